"""Online meeting providers: Zoom (Server-to-Server OAuth), Microsoft Teams (Graph onlineMeetings)
and Google Meet (a Calendar event with conferenceData).

Each client has `create(...) -> Meeting`, `update(meeting_id, ...)`, `delete(meeting_id)`
and raises `MeetingError` (with `temporary`) for anything the provider refuses.
No Flask, no database: app/services/meetings.py picks credentials, the job stores results.
"""

from app.meetings.base import Meeting, MeetingError  # noqa: F401
