"""Notification building blocks with no database: invites (ics), templates
(templating), SMS (sms), email (mailer) and retry delays (retry).

Submodules are imported directly (``from app.notifications.sms import SmsClient``);
nothing is re-exported here so that a job sending SMS does not load Babel and Jinja.
"""
