"""Loopback fakes of external services (SMTP, Twilio, and an HTTP base for more)."""
