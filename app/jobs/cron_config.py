"""Periodic jobs for `rq cron app/jobs/cron_config.py` (run.py starts it; run one in production).

The relay pass here is a safety net; `python -m app.jobs.relay` relays on commit.
"""

from rq import cron

from app import fairqueue
from app.jobs import calendar_sync, meetings, periodic, relay, webhooks

cron.register(relay.relay_job, queue_name="default", interval=30, name="outbox-relay-sweep")
cron.register(periodic.scan_reminders, queue_name="notifications", interval=60, name="reminders")
cron.register(periodic.sweep_due, queue_name="notifications", interval=60, name="stuck-deliveries")
cron.register(periodic.retention, queue_name="default", cron="17 3 * * *", name="retention")
cron.register(calendar_sync.tick, queue_name="integrations", interval=60, name="calendar-sync")
cron.register(webhooks.sweep, queue_name="integrations", interval=60, name="webhook-sweep")
cron.register(meetings.sweep, queue_name="integrations", interval=120, name="meeting-sweep")
cron.register(periodic.retention_policies, queue_name="default", cron="37 3 * * *", name="retention-policies")
cron.register(periodic.compact_day_rollups, queue_name="default", interval=300, name="day-rollup-compaction")
cron.register(fairqueue.sweep, queue_name="default", interval=60, name="long-work-sweep")
