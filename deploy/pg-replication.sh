#!/usr/bin/env bash
# Streaming replication for PostgreSQL 15 (compose.yaml uses it; it also documents the steps for
# hand-built servers). Three uses:
#
#   primary  (run by the postgres image's /docker-entrypoint-initdb.d on first start, or by hand
#            on an initialised primary): WAL for replicas, a replication role line in pg_hba.conf,
#            and the named standby as the synchronous one (a booking's COMMIT returns once the
#            standby has applied it: no acknowledged booking is lost with the primary, and reads
#            on the standby already see it; the price is one round trip to the standby per commit,
#            and commits wait while no synchronous standby is connected).
#   standby  (as the postgres user, entrypoint of the replica container): pg_basebackup -R from
#            PRIMARY_HOST into an empty PGDATA, then run postgres as a hot standby.
#   promote  (on the standby): make it the primary (`pg_ctl promote`). Then point PgBouncer at it;
#            the app's multi-host DATABASE_DIRECT_URL finds it by itself.
#
# Backups: archive WAL (archive_mode=on, archive_command to your object store, e.g. with
# pgBackRest or WAL-G) and take a base backup (pg_basebackup -D ... -X stream, or the tool's
# own) every day; restore = base backup + WAL replay to a point in time. One business alone is
# restored from its tenant export (`flask tenants export` / `import`) into a fresh schema.
set -euo pipefail
ROLE="${1:-${ROLE:-primary}}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
REPLICA_NAME="${REPLICA_NAME:-postgres_replica}"

case "$ROLE" in
  primary)
    cat >> "$PGDATA/postgresql.conf" <<CONF
# deploy/pg-replication.sh
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '1GB'
hot_standby = on
hot_standby_feedback = on
synchronous_standby_names = '${REPLICA_NAME}'
synchronous_commit = remote_apply
CONF
    echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # The app's user replicates too (compose keeps one password); give replication its own role in production.
    psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
      -c "ALTER ROLE \"${POSTGRES_USER:-postgres}\" REPLICATION" \
      -c "CREATE EXTENSION IF NOT EXISTS btree_gist"
    ;;
  standby)
    PRIMARY_HOST="${PRIMARY_HOST:?PRIMARY_HOST names the primary}"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
      until pg_isready -h "$PRIMARY_HOST" -U "${POSTGRES_USER:-upzento}" >/dev/null 2>&1; do sleep 1; done
      rm -rf "${PGDATA:?}"/*
      pg_basebackup -h "$PRIMARY_HOST" -U "${POSTGRES_USER:-upzento}" -D "$PGDATA" -R -X stream -c fast \
        -d "application_name=${REPLICA_NAME}"
      chmod 700 "$PGDATA"
    fi
    exec postgres -D "$PGDATA"
    ;;
  promote)
    exec pg_ctl -D "$PGDATA" -w promote
    ;;
  *)
    echo "usage: $0 primary|standby|promote" >&2
    exit 2
    ;;
esac
