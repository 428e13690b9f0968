{{- $s := .schema | default "es" -}}
-- es: the lifecycle of streams and of the log (schema/code/lifecycle.sql,
-- archive.sql): soft deletion, tombstones, truncation, retention policies,
-- and the archive.

SET LOCAL search_path = pg_catalog, pg_temp;

-- Per stream, all NULL for a stream that none of this touched (a NULL
-- column takes no space in the row, which every append rewrites):
--   deleted_at     set while the stream is soft-deleted or once it is
--                  tombstoned: reads by stream see nothing, appends fail;
--   tombstoned_at  set once the stream is tombstoned (hard-deleted): its
--                  events and snapshot are gone and it can never be
--                  written again;
--   truncate_before  the first version reads by stream return (NULL: 1):
--                  events below it are removed, or will be by the next
--                  apply_retention;
--   removed_before the first version apply_retention has not removed yet
--                  (NULL: 1): events below it are gone.
ALTER TABLE {{ $s }}.streams
    ADD COLUMN deleted_at      timestamptz,
    ADD COLUMN tombstoned_at   timestamptz,
    ADD COLUMN truncate_before bigint,
    ADD COLUMN removed_before  bigint,
    ADD CONSTRAINT streams_tombstoned_check CHECK (tombstoned_at IS NULL OR deleted_at IS NOT NULL) NOT VALID,
    ADD CONSTRAINT streams_truncate_before_check CHECK (truncate_before >= 1) NOT VALID,
    ADD CONSTRAINT streams_removed_before_check CHECK (removed_before >= 1 AND removed_before <= coalesce(truncate_before, 1)) NOT VALID;
-- (NOT VALID: the rows already there hold NULLs, which pass; validating
-- them would scan the table under this migration's exclusive lock. Every
-- row written from now on is checked.)

-- The streams whose events below their truncation point are not all
-- removed yet (apply_retention's work list; usually empty). Appends change
-- neither column, so they keep updating stream rows in place (HOT).
CREATE INDEX streams_removal_pending_idx ON {{ $s }}.streams (stream_id)
    WHERE coalesce(removed_before, 1) < coalesce(truncate_before, 1);

-- Retention policies: per stream (stream_id) or per category (category),
-- keep the last max_count events and/or the events younger than max_age.
-- A stream's own policy replaces its category's.
CREATE TABLE {{ $s }}.retention_policies (
    stream_id  text,
    category   text,
    max_count  bigint,
    max_age    interval,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT retention_policies_scope_check CHECK ((stream_id IS NULL) <> (category IS NULL)),
    CONSTRAINT retention_policies_rule_check CHECK (max_count IS NOT NULL OR max_age IS NOT NULL),
    CONSTRAINT retention_policies_max_count_check CHECK (max_count >= 0),
    CONSTRAINT retention_policies_max_age_check CHECK (max_age >= interval '0')
);
CREATE UNIQUE INDEX retention_policies_stream_key ON {{ $s }}.retention_policies (stream_id) WHERE stream_id IS NOT NULL;
CREATE UNIQUE INDEX retention_policies_category_key ON {{ $s }}.retention_policies (category) WHERE category IS NOT NULL;

-- Two facts every append reads with the key base (one row, read anyway):
-- whether events were ever archived (archive.sql; before that, appends
-- skip the archive), and the position of the last event ever removed (a
-- checkpoint may stay at or move to it, and the key base must stay above
-- it, keys.sql).
ALTER TABLE {{ $s }}.transaction_key_base
    ADD COLUMN archived                boolean NOT NULL DEFAULT false,
    ADD COLUMN removed_transaction_id  xid8,
    ADD COLUMN removed_global_position bigint,
    ADD CONSTRAINT transaction_key_base_removed_check
        CHECK ((removed_transaction_id IS NULL) = (removed_global_position IS NULL));

-- The archive: old events moved out of events by archive_events
-- (schema/code/archive.sql), with the same columns and indexes. Readers
-- see both tables as one (the view all_events), so what they read does not
-- change; the archive can live in a tablespace of its own (ALTER TABLE
-- ... SET TABLESPACE while it is empty: later, the move locks it).
CREATE TABLE {{ $s }}.events_archive (
    global_position bigint      NOT NULL,
    transaction_id  xid8        NOT NULL,
    stream_id       text        NOT NULL,
    version         bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    data            bytea       NOT NULL,
    metadata        bytea,
    recorded_at     timestamptz NOT NULL,
    category        text        GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
    CONSTRAINT events_archive_pkey PRIMARY KEY (transaction_id, global_position),
    CONSTRAINT events_archive_stream_version_key UNIQUE (stream_id, version),
    CONSTRAINT events_archive_event_id_key UNIQUE (event_id)
);
CREATE INDEX events_archive_category_idx ON {{ $s }}.events_archive (category, transaction_id, global_position);

-- A parked event whose event a tombstone or retention removed is resolved
-- as 'removed' (remove_events).
ALTER TABLE {{ $s }}.parked_events
    DROP CONSTRAINT parked_events_resolution_check,
    ADD CONSTRAINT parked_events_resolution_check CHECK (resolution IN ('retried', 'skipped', 'removed')
                                                         AND resolved_at IS NOT NULL
                                                         OR resolution IS NULL AND resolved_at IS NULL) NOT VALID;

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

-- all_events (the code package's) reads the archive: make it read events
-- alone first, so that what depends on it (events_view, a user's view)
-- stays.
DO $all_events$
BEGIN
    IF pg_catalog.to_regclass('{{ $s }}.all_events') IS NOT NULL THEN
        CREATE OR REPLACE VIEW {{ $s }}.all_events AS
        SELECT e.global_position, e.transaction_id, e.stream_id, e.version, e.event_id, e.event_type,
               e.data, e.metadata, e.recorded_at, e.category
          FROM {{ $s }}.events AS e;
    END IF;
END
$all_events$;
DROP TABLE {{ $s }}.events_archive, {{ $s }}.retention_policies;
ALTER TABLE {{ $s }}.transaction_key_base
    DROP COLUMN archived,
    DROP COLUMN removed_transaction_id,
    DROP COLUMN removed_global_position;
UPDATE {{ $s }}.parked_events SET resolution = 'skipped' WHERE resolution = 'removed';
ALTER TABLE {{ $s }}.parked_events
    DROP CONSTRAINT parked_events_resolution_check,
    ADD CONSTRAINT parked_events_resolution_check CHECK (resolution IN ('retried', 'skipped')
                                                         AND resolved_at IS NOT NULL
                                                         OR resolution IS NULL AND resolved_at IS NULL);
ALTER TABLE {{ $s }}.streams
    DROP COLUMN deleted_at,
    DROP COLUMN tombstoned_at,
    DROP COLUMN truncate_before,
    DROP COLUMN removed_before;
DO $down$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.rolname = '{{ $s }}_admin') THEN
        EXECUTE format('REVOKE ALL ON ALL ROUTINES IN SCHEMA %I FROM %I', '{{ $s }}', '{{ $s }}_admin');
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', '{{ $s }}', '{{ $s }}_admin');
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', '{{ $s }}', '{{ $s }}_admin');
        IF EXISTS (SELECT FROM pg_catalog.pg_auth_members AS m WHERE m.roleid = '{{ $s }}_admin'::pg_catalog.regrole) THEN
            RAISE NOTICE 'keeping role %: it is granted to other roles', '{{ $s }}_admin';
        ELSE
            BEGIN
                EXECUTE format('DROP ROLE %I', '{{ $s }}_admin');
            EXCEPTION
                WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'keeping role %: %', '{{ $s }}_admin', SQLERRM;
            END;
        END IF;
    END IF;
END
$down$;
