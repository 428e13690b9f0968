{{- $s := .schema | default "es" -}}
-- es: the read paths.
--
-- The read functions are plain SQL and STABLE, so PostgreSQL inlines them
-- into the calling query and rows stream to the client. An inlined body is
-- resolved in the caller's session, with the caller's search_path (a SET
-- clause would prevent inlining), so it names every operator, function and
-- type it uses in full (OPERATOR(pg_catalog.=), pg_catalog.octet_length,
-- ::pg_catalog.text): nothing another login creates in a schema on the
-- caller's search_path can be picked instead. Functions that are not
-- inlined pin search_path to pg_catalog, pg_temp.
--
-- Event rows end with schema_version, the column migration 008 adds. The
-- package is also installed on the tables of an earlier migration (a
-- step-by-step migration installs it after every step; migrating down
-- installs it again): PostgreSQL checks a plain SQL body against the
-- tables when the function is created, so the functions of this file are
-- created without that check (as pg_dump's output does). They read the
-- column when called, once migrations are complete; every call is tested.
SET LOCAL check_function_bodies = off;

-- invalid_argument raises PE003 for a bad read argument. The read functions
-- call it from a CASE so it runs only when an argument is bad; it takes the
-- bad value as an argument so that the planner never evaluates it ahead of
-- time while the CASE condition is still unknown (a query parameter).
CREATE OR REPLACE FUNCTION {{ $s }}.invalid_argument(p_function text, p_argument text, p_message text, p_value bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '%: % %, got %', p_function, p_argument, p_message, p_value
        USING ERRCODE = 'PE003', DETAIL = json_build_object('argument', p_argument, 'value', p_value)::text;
END
$$;

-- read_stream returns a stream's events with version >= from_version in
-- version order, at most max_count of them (NULL = all). A soft-deleted or
-- tombstoned stream has none, a truncated one none below its truncation
-- point (stream_visible_from, lifecycle.sql). A NULL or empty stream id
-- raises PE003, like a negative max_count.
CREATE OR REPLACE FUNCTION {{ $s }}.read_stream(
    p_stream_id    text,
    p_from_version bigint DEFAULT 1,
    p_max_count    int    DEFAULT NULL
) RETURNS TABLE (
    global_position bigint,
    transaction_id  xid8,
    stream_id       text,
    version         bigint,
    event_id        uuid,
    event_type      text,
    data            bytea,
    metadata        bytea,
    recorded_at     timestamptz,
    schema_version  int
)
LANGUAGE sql STABLE AS $$
    SELECT e.global_position, e.transaction_id, e.stream_id, e.version, e.event_id,
           e.event_type, e.data, e.metadata, e.recorded_at, e.schema_version
      FROM {{ $s }}.all_events AS e
     WHERE e.stream_id OPERATOR(pg_catalog.=) p_stream_id
       AND e.version OPERATOR(pg_catalog.>=) GREATEST(COALESCE(p_from_version, 1::pg_catalog.int8),
                                                      (SELECT {{ $s }}.stream_visible_from(p_stream_id)))
       AND CASE WHEN COALESCE(p_stream_id, ''::pg_catalog.text) OPERATOR(pg_catalog.=) ''::pg_catalog.text
                THEN {{ $s }}.invalid_argument('read_stream', 'stream_id', 'must not be null or empty',
                                               pg_catalog.octet_length(p_stream_id)) OPERATOR(pg_catalog.=) 0::pg_catalog.int8
                ELSE true END
     ORDER BY e.version
     LIMIT CASE WHEN p_max_count OPERATOR(pg_catalog.<) 0
                THEN {{ $s }}.invalid_argument('read_stream', 'max_count', 'must not be negative', p_max_count)
                ELSE p_max_count END
$$;

-- read_stream_backward returns a stream's events with version <=
-- from_version (NULL = from the last) newest first, at most max_count; as
-- read_stream, none of a deleted stream nor below a truncation point.
CREATE OR REPLACE FUNCTION {{ $s }}.read_stream_backward(
    p_stream_id    text,
    p_from_version bigint DEFAULT NULL,
    p_max_count    int    DEFAULT NULL
) RETURNS TABLE (
    global_position bigint,
    transaction_id  xid8,
    stream_id       text,
    version         bigint,
    event_id        uuid,
    event_type      text,
    data            bytea,
    metadata        bytea,
    recorded_at     timestamptz,
    schema_version  int
)
LANGUAGE sql STABLE AS $$
    SELECT e.global_position, e.transaction_id, e.stream_id, e.version, e.event_id,
           e.event_type, e.data, e.metadata, e.recorded_at, e.schema_version
      FROM {{ $s }}.all_events AS e
     WHERE e.stream_id OPERATOR(pg_catalog.=) p_stream_id
       AND (p_from_version IS NULL OR e.version OPERATOR(pg_catalog.<=) p_from_version)
       AND e.version OPERATOR(pg_catalog.>=) (SELECT {{ $s }}.stream_visible_from(p_stream_id))
       AND CASE WHEN COALESCE(p_stream_id, ''::pg_catalog.text) OPERATOR(pg_catalog.=) ''::pg_catalog.text
                THEN {{ $s }}.invalid_argument('read_stream_backward', 'stream_id', 'must not be null or empty',
                                               pg_catalog.octet_length(p_stream_id)) OPERATOR(pg_catalog.=) 0::pg_catalog.int8
                ELSE true END
     ORDER BY e.version DESC
     LIMIT CASE WHEN p_max_count OPERATOR(pg_catalog.<) 0
                THEN {{ $s }}.invalid_argument('read_stream_backward', 'max_count', 'must not be negative', p_max_count)
                ELSE p_max_count END
$$;

-- stream_partition returns the partition a stream belongs to in a
-- consumer group of p_partitions partitions: hashtext(stream_id) without
-- its sign bit, modulo p_partitions (es.StreamPartition computes the same
-- in Go). hashtext does not change between PostgreSQL versions: hash
-- indexes and hash partitioning store its values. A NULL stream id gives
-- NULL; p_partitions below 1 raises PE003.
CREATE OR REPLACE FUNCTION {{ $s }}.stream_partition(p_stream_id text, p_partitions int) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT (pg_catalog.hashtext(p_stream_id) OPERATOR(pg_catalog.&) 2147483647)
           OPERATOR(pg_catalog.%)
           CASE WHEN p_partitions OPERATOR(pg_catalog.>=) 1 THEN p_partitions
                ELSE {{ $s }}.invalid_argument('stream_partition', 'partitions', 'must be at least 1', p_partitions)::pg_catalog.int4 END
$$;

-- read_partitions returns the global log after the position
-- (after_transaction_id, after_position) in the order (transaction_id,
-- global_position), without gaps: it returns only events whose transaction
-- key is below the log's horizon (log_horizon, keys.sql: every transaction
-- below it has finished), so an event that commits later can never sort
-- before one already returned. A position is the pair (transaction_id,
-- global_position) of the last event read; start from ('0', 0). With
-- p_partitions not NULL, it returns only the events of the streams in the
-- partitions p_partition_set of p_partitions (stream_partition: a consumer
-- group's partitions; each 0 <= p < p_partitions, at least one, else PE003):
-- a group member holding several partitions reads them in one pass over the
-- log. categories and event_types filter when they are not NULL or empty.
-- The horizon is a scalar subquery so that it is computed once per call,
-- not once per row.
CREATE OR REPLACE FUNCTION {{ $s }}.read_partitions(
    p_after_transaction_id xid8,
    p_after_position       bigint,
    p_max_count            int,
    p_partition_set        int[],
    p_partitions           int,
    p_categories           text[] DEFAULT NULL,
    p_event_types          text[] DEFAULT NULL
) RETURNS TABLE (
    global_position bigint,
    transaction_id  xid8,
    stream_id       text,
    version         bigint,
    event_id        uuid,
    event_type      text,
    data            bytea,
    metadata        bytea,
    recorded_at     timestamptz,
    schema_version  int
)
LANGUAGE sql STABLE AS $$
    SELECT e.global_position, e.transaction_id, e.stream_id, e.version, e.event_id,
           e.event_type, e.data, e.metadata, e.recorded_at, e.schema_version
      FROM {{ $s }}.all_events AS e
     WHERE (e.transaction_id, e.global_position) OPERATOR(pg_catalog.>)
           (COALESCE(p_after_transaction_id, '0'::pg_catalog.xid8), COALESCE(p_after_position, 0::pg_catalog.int8))
       -- Implied by the row comparison above, but PostgreSQL prunes the
       -- archive's partitions (ranges of transaction_id) only on a plain
       -- comparison of the key: with it, a read skips every partition
       -- that ends before the position (a subscription near the log's end
       -- descends into no archived partition's index).
       AND e.transaction_id OPERATOR(pg_catalog.>=) COALESCE(p_after_transaction_id, '0'::pg_catalog.xid8)
       AND e.transaction_id OPERATOR(pg_catalog.<) (SELECT {{ $s }}.log_horizon())
       -- A CASE, not an OR, and one that keeps a CASE when the arguments
       -- are constants (a custom plan folds a CASE whose only test is
       -- constant into its result): the planner cannot estimate how many
       -- rows the partitions keep, and for a bare = on an expression it
       -- guesses 0.5%, which makes it read and sort every row after the
       -- position instead of walking the index in order until the batch
       -- is full (measured: 0.9 s instead of 20 ms per batch in the middle
       -- of a 1.6M-event log); a CASE it takes as keeping half.
       AND CASE WHEN p_partitions IS NULL THEN true
                WHEN {{ $s }}.stream_partition(e.stream_id, p_partitions) OPERATOR(pg_catalog.=) ANY (p_partition_set) THEN true
                ELSE false END
       AND (COALESCE(pg_catalog.cardinality(p_categories), 0) OPERATOR(pg_catalog.=) 0
            OR e.category OPERATOR(pg_catalog.=) ANY (p_categories))
       AND (COALESCE(pg_catalog.cardinality(p_event_types), 0) OPERATOR(pg_catalog.=) 0
            OR e.event_type OPERATOR(pg_catalog.=) ANY (p_event_types))
     ORDER BY e.transaction_id, e.global_position
     LIMIT CASE WHEN p_max_count OPERATOR(pg_catalog.<) 0
                THEN {{ $s }}.invalid_argument('read_all', 'max_count', 'must not be negative', p_max_count)
                WHEN p_partitions OPERATOR(pg_catalog.<) 1
                THEN {{ $s }}.invalid_argument('read_partitions', 'partitions', 'must be at least 1', p_partitions)
                WHEN p_partitions IS NOT NULL AND COALESCE(pg_catalog.cardinality(p_partition_set), 0) OPERATOR(pg_catalog.=) 0
                THEN {{ $s }}.invalid_argument('read_partitions', 'partition_set', 'must name at least one partition',
                                               COALESCE(pg_catalog.cardinality(p_partition_set), 0))
                WHEN p_partitions IS NOT NULL AND EXISTS (SELECT FROM pg_catalog.unnest(p_partition_set) AS u(p)
                     WHERE u.p IS NULL OR u.p OPERATOR(pg_catalog.<) 0 OR u.p OPERATOR(pg_catalog.>=) p_partitions)
                THEN {{ $s }}.invalid_argument('read_partitions', 'partition', 'must be between 0 and partitions - 1',
                         (SELECT u.p FROM pg_catalog.unnest(p_partition_set) AS u(p)
                           WHERE u.p IS NULL OR u.p OPERATOR(pg_catalog.<) 0 OR u.p OPERATOR(pg_catalog.>=) p_partitions LIMIT 1))
                ELSE p_max_count END
$$;

-- read_partition returns the global log after the position restricted to
-- one partition, p_partition of p_partitions, as read_partitions does for
-- several: see there. NULL partitions: the whole log, as read_all.
CREATE OR REPLACE FUNCTION {{ $s }}.read_partition(
    p_after_transaction_id xid8,
    p_after_position       bigint,
    p_max_count            int,
    p_partition            int,
    p_partitions           int,
    p_categories           text[] DEFAULT NULL,
    p_event_types          text[] DEFAULT NULL
) RETURNS TABLE (
    global_position bigint,
    transaction_id  xid8,
    stream_id       text,
    version         bigint,
    event_id        uuid,
    event_type      text,
    data            bytea,
    metadata        bytea,
    recorded_at     timestamptz,
    schema_version  int
)
LANGUAGE sql STABLE AS $$
    SELECT * FROM {{ $s }}.read_partitions(p_after_transaction_id, p_after_position, p_max_count,
                                           ARRAY[p_partition], p_partitions, p_categories, p_event_types)
$$;

-- read_all returns the whole global log after the position, as
-- read_partitions does for some partitions: see there. (It is
-- read_partitions without partitions: PostgreSQL inlines both, and folds
-- the partition condition away.)
CREATE OR REPLACE FUNCTION {{ $s }}.read_all(
    p_after_transaction_id xid8   DEFAULT '0',
    p_after_position       bigint DEFAULT 0,
    p_max_count            int    DEFAULT 1000,
    p_categories           text[] DEFAULT NULL,
    p_event_types          text[] DEFAULT NULL
) RETURNS TABLE (
    global_position bigint,
    transaction_id  xid8,
    stream_id       text,
    version         bigint,
    event_id        uuid,
    event_type      text,
    data            bytea,
    metadata        bytea,
    recorded_at     timestamptz,
    schema_version  int
)
LANGUAGE sql STABLE AS $$
    SELECT * FROM {{ $s }}.read_partitions(p_after_transaction_id, p_after_position, p_max_count,
                                           NULL, NULL, p_categories, p_event_types)
$$;

-- log_end returns the position of the last event read_all would return
-- now (the end of the visible log), or ('0', 0) when there is none: a
-- subscription that starts at the end saves it as its checkpoint.
CREATE OR REPLACE FUNCTION {{ $s }}.log_end(
    OUT transaction_id  xid8,
    OUT global_position bigint
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT COALESCE(max(l.transaction_id), '0'), COALESCE(max(l.global_position), 0)
      FROM (SELECT e.transaction_id, e.global_position
              FROM {{ $s }}.all_events AS e
             WHERE e.transaction_id < (SELECT {{ $s }}.log_horizon())
             ORDER BY e.transaction_id DESC, e.global_position DESC
             LIMIT 1) AS l
$$;

-- log_hidden reports whether events after the position exist that read_all
-- does not return yet because an older transaction is still running (their
-- keys are at or above the horizon). They will not be notified again when
-- that transaction ends, so a follower that finds none visible but some
-- hidden reads again soon. A NULL position: false.
CREATE OR REPLACE FUNCTION {{ $s }}.log_hidden(p_after_transaction_id xid8, p_after_position bigint) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_horizon xid8;
BEGIN
    IF p_after_transaction_id IS NULL OR p_after_position IS NULL THEN
        RETURN false;
    END IF;
    -- Hidden events are those after the position whose keys are at or
    -- above the horizon: after max(position, (horizon, -1)), as (tx, pos) >
    -- (horizon, -1) is tx >= horizon (positions are not negative). One row
    -- comparison, which the index scan starts at: with the horizon as a
    -- second condition it starts at the position and walks every visible
    -- event up to the horizon (125 ms on 1.6M events).
    v_horizon := {{ $s }}.log_horizon();
    IF p_after_transaction_id < v_horizon THEN
        p_after_transaction_id := v_horizon;
        p_after_position := -1;
    END IF;
    -- The first such event in index order. Not an EXISTS: PostgreSQL drops
    -- an EXISTS subquery's ORDER BY and LIMIT and plans it as a sequential
    -- scan of the whole table for a row that is usually not there (0.5 s
    -- on 1.6M events), on every idle poll of every subscription.
    -- events alone, not all_events: archive_events moves only events
    -- below the horizon, so none hidden behind it is ever archived.
    RETURN (SELECT e.global_position FROM {{ $s }}.events AS e
             WHERE (e.transaction_id, e.global_position) > (p_after_transaction_id, p_after_position)
             ORDER BY e.transaction_id, e.global_position
             LIMIT 1) IS NOT NULL;
END
$$;

-- log_behind counts the events after the position that filters keep
-- (NULL or empty: all categories, all types; a partition of a consumer
-- group, as read_partition: NULL for all): how far behind a follower at
-- that position is. hidden counts those read_all does not return yet (see
-- log_hidden); oldest_recorded_at is when the oldest of them was recorded.
-- It scans them: its cost is the length of the backlog.
CREATE OR REPLACE FUNCTION {{ $s }}.log_behind(
    p_after_transaction_id xid8,
    p_after_position       bigint,
    p_categories           text[] DEFAULT NULL,
    p_event_types          text[] DEFAULT NULL,
    p_partition            int    DEFAULT NULL,
    p_partitions           int    DEFAULT NULL
) RETURNS TABLE (events bigint, hidden bigint, oldest_recorded_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_horizon xid8 := {{ $s }}.log_horizon();
BEGIN
    RETURN QUERY
    SELECT count(*), count(*) FILTER (WHERE e.transaction_id >= v_horizon), min(e.recorded_at)
      FROM {{ $s }}.all_events AS e
     WHERE (e.transaction_id, e.global_position) > (coalesce(p_after_transaction_id, '0'), coalesce(p_after_position, 0))
       AND (p_partitions IS NULL OR {{ $s }}.stream_partition(e.stream_id, p_partitions) = p_partition)
       AND (coalesce(cardinality(p_categories), 0) = 0 OR e.category = ANY (p_categories))
       AND (coalesce(cardinality(p_event_types), 0) = 0 OR e.event_type = ANY (p_event_types));
END
$$;

-- stream_info returns one row for any stream id: its version (0 when it has
-- no events), whether it exists, and its times (NULL when it does not). A
-- soft-deleted or tombstoned stream does not exist here (the streams table
-- shows its deleted_at and tombstoned_at); a truncated one keeps its
-- version. A NULL or empty stream id raises PE003.
CREATE OR REPLACE FUNCTION {{ $s }}.stream_info(p_stream_id text)
RETURNS TABLE (
    stream_id      text,
    version        bigint,
    stream_exists  boolean,
    created_at     timestamptz,
    updated_at     timestamptz,
    transaction_id xid8
)
LANGUAGE sql STABLE AS $$
    SELECT p_stream_id, COALESCE(s.version, 0::pg_catalog.int8), s.stream_id IS NOT NULL,
           s.created_at, s.updated_at, s.transaction_id
      FROM (SELECT) AS one
      LEFT JOIN {{ $s }}.streams AS s ON s.stream_id OPERATOR(pg_catalog.=) p_stream_id
                AND (SELECT {{ $s }}.stream_visible_from(p_stream_id)) OPERATOR(pg_catalog.<) 9223372036854775807::pg_catalog.int8
     WHERE CASE WHEN COALESCE(p_stream_id, ''::pg_catalog.text) OPERATOR(pg_catalog.=) ''::pg_catalog.text
                THEN {{ $s }}.invalid_argument('stream_info', 'stream_id', 'must not be null or empty',
                                               pg_catalog.octet_length(p_stream_id)) OPERATOR(pg_catalog.=) 0::pg_catalog.int8
                ELSE true END
$$;

-- load returns, in one query, what rebuilding the stream's aggregate needs:
-- the stream's snapshot when its schema version is p_snapshot_schema_version,
-- then the events after it in version order; without such a snapshot (none,
-- another schema version, or p_snapshot_schema_version NULL), every event.
-- A soft-deleted or tombstoned stream returns nothing; a truncated one no
-- event below its truncation point (so, without a snapshot at or after it,
-- the versions returned do not start where the caller expects: pgstore
-- reports es.ErrStreamTruncated).
--
-- The snapshot row comes first: its snapshot_state is not NULL, version is
-- the snapshot's version, recorded_at its creation time, and the event
-- columns are NULL (schema_version, the last column, too: it is the
-- event's). Event rows have snapshot_schema_version and snapshot_state
-- NULL. A stream with no events returns no rows. The function is plain
-- SQL, so PostgreSQL inlines it into the calling query: the union below is
-- planned as a merge of two index scans (the one snapshot row, the events
-- after it in version order), rows stream, and a LIMIT on the call limits
-- the scan. Both parts read one MVCC snapshot, so
-- the events always continue the snapshot.
CREATE OR REPLACE FUNCTION {{ $s }}.load(
    p_stream_id               text,
    p_snapshot_schema_version int
) RETURNS TABLE (
    global_position         bigint,
    transaction_id          xid8,
    stream_id               text,
    version                 bigint,
    event_id                uuid,
    event_type              text,
    data                    bytea,
    metadata                bytea,
    recorded_at             timestamptz,
    snapshot_schema_version int,
    snapshot_state          bytea,
    schema_version          int
)
LANGUAGE sql STABLE AS $$
    SELECT u.global_position, u.transaction_id, u.stream_id, u.version, u.event_id, u.event_type, u.data, u.metadata,
           u.recorded_at, u.snapshot_schema_version, u.snapshot_state, u.schema_version
      FROM (SELECT NULL::pg_catalog.int8 AS global_position, NULL::pg_catalog.xid8 AS transaction_id, s.stream_id, s.version,
                   NULL::pg_catalog.uuid AS event_id, NULL::pg_catalog.text AS event_type, NULL::pg_catalog.bytea AS data,
                   NULL::pg_catalog.bytea AS metadata, s.created_at AS recorded_at,
                   s.schema_version AS snapshot_schema_version, s.state AS snapshot_state,
                   NULL::pg_catalog.int4 AS schema_version
              FROM {{ $s }}.snapshots AS s
            UNION ALL
            SELECT e.global_position, e.transaction_id, e.stream_id, e.version, e.event_id, e.event_type, e.data,
                   e.metadata, e.recorded_at, NULL::pg_catalog.int4, NULL::pg_catalog.bytea, e.schema_version
              FROM {{ $s }}.all_events AS e) AS u
     WHERE u.stream_id OPERATOR(pg_catalog.=) p_stream_id
       AND CASE WHEN u.snapshot_state IS NOT NULL
                THEN u.snapshot_schema_version OPERATOR(pg_catalog.=) p_snapshot_schema_version
                ELSE u.version OPERATOR(pg_catalog.>) COALESCE((SELECT s.version FROM {{ $s }}.snapshots AS s
                                                                 WHERE s.stream_id OPERATOR(pg_catalog.=) p_stream_id
                                                                   AND s.schema_version OPERATOR(pg_catalog.=) p_snapshot_schema_version),
                                                                0::pg_catalog.int8)
                     AND u.version OPERATOR(pg_catalog.>=) (SELECT {{ $s }}.stream_visible_from(p_stream_id)) END
       AND CASE WHEN COALESCE(p_stream_id, ''::pg_catalog.text) OPERATOR(pg_catalog.=) ''::pg_catalog.text
                THEN {{ $s }}.invalid_argument('load', 'stream_id', 'must not be null or empty',
                                               pg_catalog.octet_length(p_stream_id)) OPERATOR(pg_catalog.=) 0::pg_catalog.int8
                -- (in the ELSE: a bad argument raises before the stream is looked up)
                ELSE (SELECT {{ $s }}.stream_visible_from(p_stream_id)) OPERATOR(pg_catalog.<) 9223372036854775807::pg_catalog.int8 END
     ORDER BY u.version
$$;

SET LOCAL check_function_bodies = DEFAULT;
