"""The admin login resists guessing (SPEC §9, issue 8 item 8): django-axes
locks a username out from an address after AXES_FAILURE_LIMIT failures, even
for the right password, until the cool-off passes; a success resets it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("ann", "ann@example.com", PASSWORD)


def _login(client, password: str, username: str = "ann", address: str = "192.0.2.10"):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password},
                       REMOTE_ADDR=address)


def _logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def test_twenty_wrong_passwords_then_the_right_one_is_locked_out(client, staff, settings):
    for _ in range(20):
        assert _login(client, "wrong").status_code in (200, 429)
    response = _login(client, PASSWORD)
    assert not _logged_in(response)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    page = response.content.decode()
    assert "Sign-in temporarily locked" in page and 'href="/admin/login/"' in page


@override_settings(AXES_FAILURE_LIMIT=3)
def test_the_lockout_is_per_username_and_address_and_a_success_resets_it(client, staff):
    for _ in range(2):
        assert _login(client, "wrong").status_code == 200
    assert _logged_in(_login(client, PASSWORD))  # under the limit: the right password works and resets
    client.logout()
    for _ in range(2):
        _login(client, "wrong")
    assert _logged_in(_login(client, PASSWORD))
    client.logout()
    for _ in range(3):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 429
    # Another address is not locked out of the same account.
    assert _logged_in(_login(client, PASSWORD, address="198.51.100.20"))


def test_the_cool_off_comes_from_the_environment(settings):
    from datetime import timedelta

    assert settings.AXES_FAILURE_LIMIT >= 1
    assert isinstance(settings.AXES_COOLOFF_TIME, timedelta) and settings.AXES_COOLOFF_TIME > timedelta(0)
