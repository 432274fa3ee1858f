from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from companies.api_keys import KEY_PATTERN, hash_key
from companies.models import ApiKey

pytestmark = pytest.mark.django_db


def _run(*args) -> tuple[str, str]:
    stdout, stderr = StringIO(), StringIO()
    call_command(*args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


class TestCreateApiKey:
    def test_prints_only_the_key(self, product):
        stdout, _ = _run("create_api_key", "--product", "chat", "--name", "Chat backend")
        raw_key = stdout.strip()
        assert KEY_PATTERN.match(raw_key) and stdout.count("\n") <= 1
        key = ApiKey.objects.get(name="Chat backend")
        assert key.product == product and key.key_hash == hash_key(raw_key)

    def test_unknown_product(self, product):
        with pytest.raises(CommandError, match="Unknown product 'nope'"):
            _run("create_api_key", "--product", "nope", "--name", "x")
        assert not ApiKey.objects.exists()

    def test_unknown_product_from_the_command_line_exits_1_without_traceback(self, product, capsys):
        from django.core.management import ManagementUtility

        with pytest.raises(SystemExit) as exc:
            ManagementUtility(["manage.py", "create_api_key", "--product", "nope", "--name", "x"]).execute()
        captured = capsys.readouterr()
        assert exc.value.code == 1
        assert captured.out == ""
        assert "Unknown product" in captured.err and "Traceback" not in captured.err
