"""Calendar providers: Google Calendar v3, Microsoft Graph, CalDAV; one small interface for the sync.

The clients here speak HTTP only (no database, no Flask): `app/services/calendars.py`
decides what to write and what a pulled event means, `app/jobs/calendars.py` runs it.
"""
