import pytest

from tests.notifications.receiver import Receiver


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running
