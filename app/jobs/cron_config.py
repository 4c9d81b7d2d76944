"""Periodic jobs for `rq cron app/jobs/cron_config.py` (run.py starts it; run one in production).

The relay pass here is a safety net; `python -m app.jobs.relay` relays on commit.
"""

from rq import cron

from app.jobs import calendar_sync, periodic, relay

cron.register(relay.relay_job, queue_name="default", interval=30, name="outbox-relay-sweep")
cron.register(periodic.scan_reminders, queue_name="notifications", interval=60, name="reminders")
cron.register(periodic.sweep_due, queue_name="notifications", interval=60, name="stuck-deliveries")
cron.register(periodic.retention, queue_name="default", cron="17 3 * * *", name="retention")
cron.register(calendar_sync.tick, queue_name="integrations", interval=60, name="calendar-sync")
