import pytest

from fakes.http_fake import HttpFake, Response
from fakes.smtp_sink import SmtpSink
from fakes.twilio import FakeTwilio


@pytest.fixture
def smtp_sink():
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def callback_receiver():
    """Stands in for our own status-callback endpoint."""
    receiver = HttpFake()
    receiver.route("POST", r"/hooks/sms/status", lambda req, match: Response(204))
    with receiver:
        yield receiver
