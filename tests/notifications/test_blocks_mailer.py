import socket
from datetime import datetime, timezone

import icalendar
import pytest

from app.notifications.ics import IcsEvent, as_cancelled, build_ics
from app.notifications.mailer import MailPermanentError, MailTemporaryError, SmtpMailer, build_email
from fakes.smtp_sink import SmtpSink

DATE = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
EVENT = IcsEvent(
    uid="appt-7@riverside.upzento",
    sequence=1,
    start=datetime(2026, 3, 17, 13, 30, tzinfo=timezone.utc),
    end=datetime(2026, 3, 17, 14, 15, tzinfo=timezone.utc),
    summary="Haircut & styling",
    organizer_name="Riverside Studio",
    organizer_email="hello@riverside.example",
    attendees=[("Lucía García", "lucia@example.com")],
    dtstamp=DATE,
)


def make_email(ics_method="REQUEST", **overrides):
    event = EVENT if ics_method == "REQUEST" else as_cancelled(EVENT, DATE)
    params = dict(
        sender_name="Riverside Studio",
        sender_email="bookings@mail.upzento.example",
        reply_to=("Riverside Studio", "hello@riverside.example"),
        to=[("Lucía García", "lucia@example.com")],
        subject="Reserva confirmada: Corte y peinado",
        text="Hola, Lucía:\n\nSu cita está confirmada.",
        html="<p>Hola, Lucía:</p><p>Su cita está confirmada.</p>",
        ics=build_ics(event, ics_method),
        ics_method=ics_method,
        date=DATE,
    )
    params.update(overrides)
    return build_email(**params)


def mailer_for(sink, **kw) -> SmtpMailer:
    return SmtpMailer(sink.host, sink.port, timeout=5, **kw)


def test_invite_email_structure():
    msg = make_email()

    assert msg.get_content_type() == "multipart/mixed"
    alternative, attachment = msg.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html", "text/calendar"]
    calendar = list(alternative.iter_parts())[2]
    assert calendar.get_param("method") == "REQUEST"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_content() == build_ics(EVENT, "REQUEST")
    assert msg["Message-ID"].endswith("@mail.upzento.example>")
    assert msg["Date"].datetime == DATE
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Reply-To"].addresses[0].addr_spec == "hello@riverside.example"


def test_plain_email_without_html_or_invite_is_a_single_part():
    msg = build_email("Studio", "s@mail.example", None, "a@example.com", "Hi", "Just text")
    assert msg.get_content_type() == "text/plain"
    assert msg["Reply-To"] is None
    assert msg["Date"] is not None


def test_ics_method_must_match_the_calendar_data():
    with pytest.raises(ValueError, match="METHOD:CANCEL"):
        make_email(ics=build_ics(EVENT, "REQUEST"), ics_method="CANCEL")
    with pytest.raises(ValueError, match="ics_method"):
        build_email("S", "s@mail.example", None, "a@example.com", "Hi", "text",
                    ics=build_ics(EVENT, "REQUEST"), ics_method=None)


def test_header_injection_is_refused():
    with pytest.raises(ValueError):
        make_email(subject="Hi\r\nBcc: victim@example.com")


def test_sent_message_arrives_intact_with_a_parsable_invite(smtp_sink):
    msg = make_email()
    message_id = mailer_for(smtp_sink).send(msg, envelope_from="bounces@mail.upzento.example")

    [received] = smtp_sink.wait_for(1)
    assert received.mail_from == "bounces@mail.upzento.example"
    assert received.rcpt_tos == ("lucia@example.com",)
    got = received.message
    assert got["Message-ID"] == message_id
    assert str(got["Subject"]) == "Reserva confirmada: Corte y peinado"
    assert got["To"].addresses[0].display_name == "Lucía García"
    assert got.get_body(("plain",)).get_content().startswith("Hola, Lucía:")
    assert "Su cita está confirmada." in got.get_body(("html",)).get_content()
    [attachment] = list(got.iter_attachments())
    cal = icalendar.Calendar.from_ical(attachment.get_content())
    assert str(cal["METHOD"]) == "REQUEST"
    assert str(cal.walk("VEVENT")[0]["UID"]) == "appt-7@riverside.upzento"


def test_cancellation_carries_method_cancel(smtp_sink):
    mailer_for(smtp_sink).send(make_email(ics_method="CANCEL"))
    [received] = smtp_sink.wait_for(1)
    calendar = next(p for p in received.message.walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "CANCEL"
    cal = icalendar.Calendar.from_ical(calendar.get_content())
    assert str(cal.walk("VEVENT")[0]["STATUS"]) == "CANCELLED"


def test_message_without_id_gets_one(smtp_sink):
    msg = make_email()
    del msg["Message-ID"]
    message_id = mailer_for(smtp_sink).send(msg)
    assert message_id.endswith("@mail.upzento.example>")
    assert smtp_sink.wait_for(1)[0].message["Message-ID"] == message_id


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_451_is_temporary_and_the_retry_succeeds(smtp_sink, stage):
    smtp_sink.refuse_next(1, 451, stage=stage)
    mailer = mailer_for(smtp_sink)

    with pytest.raises(MailTemporaryError) as info:
        mailer.send(make_email())
    assert info.value.code == 451
    assert smtp_sink.messages == []

    mailer.send(make_email())
    assert len(smtp_sink.wait_for(1)) == 1


@pytest.mark.parametrize("stage, code", [("rcpt", 550), ("data", 554)])
def test_5xx_is_permanent(smtp_sink, stage, code):
    smtp_sink.refuse_next(1, code, stage=stage)
    with pytest.raises(MailPermanentError) as info:
        mailer_for(smtp_sink).send(make_email())
    assert info.value.code == code


def test_connection_refused_is_temporary():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MailTemporaryError):
        SmtpMailer("127.0.0.1", port, timeout=2).send(make_email())


def test_login_with_credentials():
    with SmtpSink(credentials=("tenant", "s3cret")) as sink:
        mailer_for(sink, username="tenant", password="s3cret").send(make_email())
        assert len(sink.wait_for(1)) == 1

        with pytest.raises(MailPermanentError) as info:
            mailer_for(sink, username="tenant", password="wrong").send(make_email())
        assert info.value.code == 535


def test_starttls_and_ssl_are_exclusive():
    with pytest.raises(ValueError):
        SmtpMailer("127.0.0.1", 25, starttls=True, ssl=True)
