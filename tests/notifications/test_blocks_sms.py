import base64
import socket
from datetime import datetime, timezone

import pytest

from app.notifications.sms import (
    InvalidPhone,
    SmsClient,
    SmsPermanentError,
    SmsTemporaryError,
    _retry_after_seconds,
    is_opt_in_keyword,
    is_opt_out_keyword,
    is_valid_signature,
    normalize_phone,
    parse_status_callback,
    sms_segments,
)

TO = "+491711234567"


def client_for(twilio, **overrides) -> SmsClient:
    params = dict(base_url=twilio.base_url, account_sid=twilio.account_sid, auth_token=twilio.auth_token,
                  from_number="+4930555000", timeout=5)
    params.update(overrides)
    return SmsClient(**params)


# -- phone numbers -----------------------------------------------------------

@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("030 1234567", "DE", "+49301234567"),
        ("+49 (30) 123-4567", "DE", "+49301234567"),
        ("0171 1234567", "de", "+491711234567"),
        ("+1 202-555-0143", None, "+12025550143"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("06 12 34 56 78", "FR", "+33612345678"),
    ],
)
def test_numbers_are_normalized_to_e164(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    "raw, region, message",
    [
        ("", "DE", "empty"),
        ("call me", "DE", "not a phone number"),
        ("12345", "DE", "not a valid phone number for DE"),
        ("030 1234567", None, "country code"),
    ],
)
def test_bad_numbers_raise_a_clear_error(raw, region, message):
    with pytest.raises(InvalidPhone, match=message):
        normalize_phone(raw, region)


# -- sending -----------------------------------------------------------------

def test_send_posts_a_form_with_basic_auth_and_returns_the_sid(twilio):
    result = client_for(twilio).send(TO, "Your booking is confirmed.", status_callback="http://127.0.0.1:9/cb")

    assert result.sid.startswith("SM") and len(result.sid) == 34
    assert result.status == "queued"
    [req] = twilio.requests
    assert req.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert req.form == {"To": TO, "From": "+4930555000", "Body": "Your booking is confirmed.",
                        "StatusCallback": "http://127.0.0.1:9/cb"}
    user, _, password = base64.b64decode(req.headers["authorization"].split()[1]).decode().partition(":")
    assert (user, password) == (twilio.account_sid, twilio.auth_token)
    assert twilio.messages[result.sid]["to"] == TO


def test_429_is_temporary_and_honours_retry_after(twilio):
    twilio.fail_next_with_429(retry_after=7)
    client = client_for(twilio)

    with pytest.raises(SmsTemporaryError) as info:
        client.send(TO, "hi")
    assert info.value.retry_after == 7.0
    assert info.value.status == 429
    assert not info.value.maybe_sent
    assert client.send(TO, "hi").sid.startswith("SM")  # the next try goes through


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_temporary(twilio, status):
    twilio.fail_next(status, {"code": 20500, "message": "Internal Server Error", "status": status})
    with pytest.raises(SmsTemporaryError) as info:
        client_for(twilio).send(TO, "hi")
    assert info.value.status == status
    assert info.value.retry_after is None


def test_invalid_recipient_is_permanent_with_twilio_code(twilio):
    with pytest.raises(SmsPermanentError) as info:
        client_for(twilio).send("12345", "hi")
    assert info.value.code == 21211
    assert info.value.status == 400
    assert "12345" in info.value.message


def test_unsubscribed_recipient_is_permanent_and_flagged(twilio):
    twilio.opted_out.add(TO)
    with pytest.raises(SmsPermanentError) as info:
        client_for(twilio).send(TO, "hi")
    assert info.value.code == 21610
    assert info.value.opted_out


def test_scripted_400_is_permanent(twilio):
    twilio.fail_next_with_error(400, 21408, "Permission to send an SMS has not been enabled for the region")
    with pytest.raises(SmsPermanentError) as info:
        client_for(twilio).send(TO, "hi")
    assert info.value.code == 21408


def test_empty_body_is_rejected_by_the_api(twilio):
    with pytest.raises(SmsPermanentError) as info:
        client_for(twilio).send(TO, "")
    assert info.value.code == 21602


def test_bad_credentials_are_permanent(twilio):
    with pytest.raises(SmsPermanentError) as info:
        client_for(twilio, auth_token="wrong").send(TO, "hi")
    assert (info.value.status, info.value.code) == (401, 20003)
    assert twilio.messages == {}


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_temporary_and_was_not_sent():
    client = SmsClient(f"http://127.0.0.1:{free_loopback_port()}", "AC1", "t", "+4930555000", timeout=2)
    with pytest.raises(SmsTemporaryError) as info:
        client.send(TO, "hi")
    assert info.value.maybe_sent is False


def test_retry_after_may_be_an_http_date():
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert _retry_after_seconds("Sun, 01 Mar 2026 12:00:30 GMT", now) == 30
    assert _retry_after_seconds("Sun, 01 Mar 2026 11:00:00 GMT", now) == 0
    assert _retry_after_seconds("soon", now) is None
    assert _retry_after_seconds("2.5", now) == 2.5


# -- status callbacks --------------------------------------------------------

def test_status_callback_round_trip(twilio, callback_receiver):
    url = callback_receiver.base_url + "/hooks/sms/status"
    sid = client_for(twilio).send(TO, "hi", status_callback=url).sid

    assert twilio.deliver_status(sid, "delivered").status_code == 204
    twilio.deliver_status(sid, "failed", error_code=30003)

    first, second = callback_receiver.wait_for_requests(2)
    assert parse_status_callback(first.form) == (sid, "delivered", None)
    assert parse_status_callback(second.form) == (sid, "failed", 30003)
    signature = first.headers["x-twilio-signature"]
    assert is_valid_signature(twilio.auth_token, url, first.form, signature)
    assert not is_valid_signature("other-token", url, first.form, signature)
    assert not is_valid_signature(twilio.auth_token, url, {**first.form, "MessageStatus": "read"}, signature)


def test_status_callback_without_sid_is_rejected():
    with pytest.raises(ValueError):
        parse_status_callback({"MessageStatus": "delivered"})


def test_fake_refuses_to_call_back_beyond_loopback(twilio):
    sid = client_for(twilio).send(TO, "hi", status_callback="https://hooks.example.com/sms").sid
    with pytest.raises(ValueError, match="non-loopback"):
        twilio.deliver_status(sid, "delivered")


# -- inbound keywords and segments -------------------------------------------

@pytest.mark.parametrize("body", ["STOP", "stop", " Stop! ", "unsubscribe", "STOPALL\n"])
def test_opt_out_keywords(body):
    assert is_opt_out_keyword(body)


@pytest.mark.parametrize("body", ["stop it please", "Don't stop", "", None, "START"])
def test_not_opt_out(body):
    assert not is_opt_out_keyword(body)


def test_opt_in_keywords():
    assert is_opt_in_keyword("start") and is_opt_in_keyword("UNSTOP")
    assert not is_opt_in_keyword("STOP")


def test_segment_count_depends_on_the_alphabet():
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2
    assert sms_segments("€" * 80) == 1  # extension characters count twice
    assert sms_segments("ô" * 70) == 1
    assert sms_segments("ô" * 71) == 2
