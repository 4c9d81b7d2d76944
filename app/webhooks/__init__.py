"""Outgoing webhooks: Standard Webhooks signing, the SSRF-guarded HTTP sender and the payload schemas.

Pure helpers (no Flask, no database): services (app/services/webhooks.py) and
jobs (app/jobs/webhooks.py) build on them.
"""
