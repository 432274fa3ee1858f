from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from companies.api_keys import KEY_PATTERN, hash_key
from companies.models import ApiKey, Company, Contact, Product, ProductLink

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


class TestDemoSetup:
    def test_creates_demo_data_and_prints_credentials_once(self):
        stdout, _ = _run("demo_setup")
        assert Product.objects.filter(code="chat").exists()
        assert Company.objects.count() >= 20
        assert ProductLink.objects.filter(product__code="chat").count() >= 20
        assert Contact.objects.filter(is_primary=True).count() == Company.objects.count()
        assert "http://127.0.0.1:8000/admin/" in stdout and "/api/v1/docs/" in stdout
        password = next(line.split()[-1] for line in stdout.splitlines() if "Password:" in line)
        raw_key = next(line.split()[2] for line in stdout.splitlines() if "API key:" in line)
        admin = User.objects.get(username="admin")
        assert admin.is_superuser and admin.check_password(password)
        assert ApiKey.objects.get(key_hash=hash_key(raw_key)).product.code == "chat"

    def test_running_twice_adds_no_companies_and_rotates_credentials(self):
        first, _ = _run("demo_setup")
        companies = Company.objects.count()
        contacts = Contact.objects.count()
        second, _ = _run("demo_setup")
        assert Company.objects.count() == companies and Contact.objects.count() == contacts
        assert first != second
        assert User.objects.filter(username="admin").count() == 1
