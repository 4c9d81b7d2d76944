"""The notification tests' private Redis, SMTP sink and real rq workers, for the mail-language tests."""

from notifications.conftest import notif, private_redis, smtp, twilio, workers  # noqa: F401
