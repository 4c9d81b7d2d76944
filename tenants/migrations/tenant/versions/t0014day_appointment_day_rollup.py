"""Daily rollup of appointments for the analytics figures (bookings, cancellations, no-shows, revenue).

`appointment_day` holds, per local day of the business (in the zone `appointment_day_zone`
names), status and currency, the count of appointments and their price x seats: once for
every appointment (dim 0, dim_id 0) and once per location (dim 1), staff member (dim 2) and
service (dim 3), so a figure with no filter or one of those filters reads a few rows per day
instead of every appointment.

Writes never touch it. Statement-level triggers with transition tables on `appointment`
append signed rows (+ for new rows, - for old rows, one per key) to `appointment_day_delta`:
inserts only, so two bookings never wait on one rollup row. `appointment_day_compact()`
moves the delta into the rollup in one statement (DELETE ... RETURNING summed and upserted,
the same snapshot, so nothing is lost or counted twice), under an advisory lock (a second
compaction skips). Readers add rollup and delta up in one statement: the answer is exact at
every moment, not eventually.

`appointment_day_rebuild(zone)` recounts everything in another zone (the business's zone
changed); it holds a SHARE lock on `appointment` meanwhile, so no write is counted in the
old zone. The backfill below is that rebuild, in the zone of the business that owns the
schema (UTC when none does yet, as when the schema script is recorded).

This revision also merges t0002n, a head no later revision had named.

Revision ID: t0014day
Revises: t0002n, t0013cal
"""

from alembic import op

revision = "t0014day"
down_revision = ("t0002n", "t0013cal")
branch_labels = None
depends_on = None

# One row per (appointment, dimension) with a value: total, location, staff, service.
_DIMS = "CROSS JOIN LATERAL (VALUES (0, 0), (1, r.location_id), (2, r.staff_id), (3, r.service_id)) d(dim, dim_id)"
_KEY = "d.dim, d.dim_id, (r.start_at AT TIME ZONE zone)::date, r.status, r.currency"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE appointment_day_zone (
            id boolean PRIMARY KEY DEFAULT true CHECK (id),
            timezone varchar(64) NOT NULL
        )
        """
    )
    for table, key in (("appointment_day", True), ("appointment_day_delta", False)):
        op.execute(
            f"""
            CREATE TABLE {table} (
                dim smallint NOT NULL,
                dim_id integer NOT NULL,
                day date NOT NULL,
                status varchar(20) NOT NULL,
                currency varchar(3),
                n bigint NOT NULL,
                amount numeric NOT NULL
            )
            """
        )
    # Not a primary key: a NULL currency is a key value of its own (NULLS NOT DISTINCT, PostgreSQL 15).
    op.execute(
        "ALTER TABLE appointment_day ADD CONSTRAINT uq_appointment_day_key"
        " UNIQUE NULLS NOT DISTINCT (dim, dim_id, day, status, currency)"
    )
    # The delta is small between compactions, but a bulk import can make it large until the next one.
    op.execute("CREATE INDEX ix_appointment_day_delta_key ON appointment_day_delta (dim, dim_id, day)")

    # One function for the three triggers (a trigger with transition tables has one event).
    op.execute(
        f"""
        CREATE FUNCTION appointment_day_track() RETURNS trigger LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
        DECLARE
            zone text := (SELECT timezone FROM appointment_day_zone);
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO appointment_day_delta (dim, dim_id, day, status, currency, n, amount)
                SELECT {_KEY}, count(*), sum(coalesce(r.price, 0) * r.seats)
                FROM new_rows r {_DIMS} WHERE d.dim_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO appointment_day_delta (dim, dim_id, day, status, currency, n, amount)
                SELECT {_KEY}, -count(*), -sum(coalesce(r.price, 0) * r.seats)
                FROM old_rows r {_DIMS} WHERE d.dim_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5;
            ELSE
                -- An update that changes nothing counted (a reminder flag, a meeting link) adds nothing.
                INSERT INTO appointment_day_delta (dim, dim_id, day, status, currency, n, amount)
                SELECT {_KEY}, sum(r.sign), sum(r.sign * coalesce(r.price, 0) * r.seats)
                FROM (SELECT 1 AS sign, * FROM new_rows UNION ALL SELECT -1, * FROM old_rows) r {_DIMS}
                WHERE d.dim_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5
                HAVING sum(r.sign) <> 0 OR sum(r.sign * coalesce(r.price, 0) * r.seats) <> 0;
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION appointment_day_clear() RETURNS trigger LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
        BEGIN
            DELETE FROM appointment_day_delta;
            DELETE FROM appointment_day;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION appointment_day_compact() RETURNS bigint LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
        DECLARE
            moved bigint;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM appointment_day_delta) THEN
                RETURN 0;  -- most businesses, most runs: no scan of the rollup for rows at 0
            END IF;
            -- One compaction per schema at a time; another one finding the lock taken skips.
            IF NOT pg_try_advisory_xact_lock(7262014, hashtext(current_schema())) THEN
                RETURN -1;
            END IF;
            WITH gone AS (
                DELETE FROM appointment_day_delta RETURNING dim, dim_id, day, status, currency, n, amount
            )
            INSERT INTO appointment_day AS t (dim, dim_id, day, status, currency, n, amount)
            SELECT dim, dim_id, day, status, currency, sum(n), sum(amount) FROM gone GROUP BY 1, 2, 3, 4, 5
            ON CONFLICT ON CONSTRAINT uq_appointment_day_key
            DO UPDATE SET n = t.n + excluded.n, amount = t.amount + excluded.amount;
            GET DIAGNOSTICS moved = ROW_COUNT;
            -- No appointment left under the key (its amount is then 0 too).
            DELETE FROM appointment_day WHERE n = 0;
            RETURN moved;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION appointment_day_rebuild(zone text) RETURNS void LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
        BEGIN
            -- Writers wait (and ones under way finish first): none is counted in the old zone.
            LOCK TABLE appointment IN SHARE MODE;
            PERFORM pg_advisory_xact_lock(7262014, hashtext(current_schema()));
            INSERT INTO appointment_day_zone (id, timezone) VALUES (true, zone)
            ON CONFLICT (id) DO UPDATE SET timezone = excluded.timezone;
            DELETE FROM appointment_day_delta;
            DELETE FROM appointment_day;
            INSERT INTO appointment_day (dim, dim_id, day, status, currency, n, amount)
            SELECT {_KEY}, count(*), sum(coalesce(r.price, 0) * r.seats)
            FROM appointment r {_DIMS} WHERE d.dim_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5
            ORDER BY 1, 2, 3;  -- a figure's rows (one dim_id, consecutive days) on few pages
        END $$
        """
    )
    for event, referencing in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER trg_appointment_day_{event.lower()} AFTER {event} ON appointment"
            f" REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION appointment_day_track()"
        )
    op.execute(
        "CREATE TRIGGER trg_appointment_day_truncate AFTER TRUNCATE ON appointment"
        " FOR EACH STATEMENT EXECUTE FUNCTION appointment_day_clear()"
    )
    # Backfill in the zone of the business this schema belongs to.
    op.execute(
        "SELECT appointment_day_rebuild(coalesce("
        "(SELECT timezone FROM public.tenant WHERE schema_name = current_schema()), 'UTC'))"
    )


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER trg_appointment_day_{event} ON appointment")
    for fn in ("appointment_day_rebuild(text)", "appointment_day_compact()", "appointment_day_clear()",
               "appointment_day_track()"):
        op.execute(f"DROP FUNCTION {fn}")
    for table in ("appointment_day_delta", "appointment_day", "appointment_day_zone"):
        op.execute(f"DROP TABLE {table}")
