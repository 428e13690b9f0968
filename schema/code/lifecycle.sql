{{- $s := .schema | default "es" -}}
-- es: the lifecycle of streams: soft deletion (hide, restore), tombstones
-- (remove for good), truncation and retention policies (remove old events
-- in bounded batches). The columns and tables are those of migration 006.
--
-- What each does to readers:
--   - reads by stream (read_stream, read_stream_backward, load,
--     stream_info) see a soft-deleted or tombstoned stream as one that does
--     not exist, and a truncated stream from its truncation point on
--     (stream_visible_from);
--   - the global log (read_all, read_partitions, subscriptions) keeps a
--     soft-deleted stream's events (soft deletion is reversible and the log
--     never changes under a subscription); events removed by a tombstone or
--     by retention are gone from it: a subscription past them is
--     unaffected, one before them never sees them, and no other event moves
--     (the log stays in order and without gaps between the events that
--     remain).
--
-- SQLSTATEs: PE004 stream deleted (DETAIL {"stream_id", "tombstoned"}),
-- PE011 stream not found, PE003 invalid argument, PE001 wrong expected version.
--
-- Only the schema's owner may remove events: the immutability trigger
-- (immutability.sql) lets a DELETE on events through only when the current
-- user owns the table and the transaction has set es.removing_events,
-- which the functions below do around their DELETE (SECURITY DEFINER: they
-- run as the owner). The functions that remove events are granted to
-- {{ $s }}_admin only (roles.sql).

-- stream_visible_from returns the first version of a stream that reads by
-- stream return: its truncation point (1 when it has none), the largest
-- bigint for a soft-deleted or tombstoned stream (none), NULL when the
-- stream does not exist. The read functions call it once per call, as a
-- scalar subquery. (PL/pgSQL: its body is resolved when it runs, so the
-- code package installs on every schema version.)
CREATE OR REPLACE FUNCTION {{ $s }}.stream_visible_from(p_stream_id text) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (SELECT CASE WHEN s.deleted_at IS NULL THEN coalesce(s.truncate_before, 1)
                        ELSE 9223372036854775807 END
              FROM {{ $s }}.streams AS s
             WHERE s.stream_id = p_stream_id);
END
$$;

-- check_stream_argument raises PE003 for a NULL, empty or oversized
-- stream id.
CREATE OR REPLACE FUNCTION {{ $s }}.check_stream_argument(p_function text, p_stream_id text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_stream_id IS NULL OR p_stream_id = '' OR octet_length(p_stream_id) > 1000 THEN
        RAISE EXCEPTION '%: stream id must be 1 to 1000 bytes, got %', p_function,
                coalesce(octet_length(p_stream_id)::text || ' bytes', 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "stream_id"}';
    END IF;
END
$$;

-- lock_stream takes the stream's row for update (appends to it wait, and
-- it waits for them), checks the expected version as append does (NULL:
-- any; -1: the stream must exist; 0: it must not; n: at version n; a
-- soft-deleted stream counts as not existing) and returns the row's
-- version, deleted_at and tombstoned_at; present is false when the stream
-- has no row.
CREATE OR REPLACE FUNCTION {{ $s }}.lock_stream(p_function text, p_stream_id text, p_expected_version bigint,
                                                OUT present boolean, OUT version bigint,
                                                OUT deleted_at timestamptz, OUT tombstoned_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_actual bigint;
BEGIN
    PERFORM {{ $s }}.check_stream_argument(p_function, p_stream_id);
    IF p_expected_version < -1 THEN
        RAISE EXCEPTION '%: expected version % is invalid (use NULL, -1, 0 or a version)', p_function, p_expected_version
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "expected_version"}';
    END IF;
    SELECT true, s.version, s.deleted_at, s.tombstoned_at INTO present, version, deleted_at, tombstoned_at
      FROM {{ $s }}.streams AS s WHERE s.stream_id = p_stream_id FOR UPDATE;
    present := coalesce(present, false);
    v_actual := CASE WHEN present AND deleted_at IS NULL THEN version ELSE 0 END;
    IF p_expected_version IS NOT NULL
       AND NOT ((p_expected_version = -1 AND v_actual > 0) OR v_actual = p_expected_version) THEN
        RAISE EXCEPTION '%: wrong expected version for stream %: expected %, actual %', p_function, p_stream_id,
                CASE p_expected_version WHEN -1 THEN 'stream exists' WHEN 0 THEN 'no stream' ELSE p_expected_version::text END,
                v_actual
            USING ERRCODE = 'PE001',
                  DETAIL = json_build_object('stream_id', p_stream_id, 'expected', p_expected_version, 'actual', v_actual)::text;
    END IF;
END
$$;

-- raise_stream_not_found raises PE011 for a stream that does not exist.
CREATE OR REPLACE FUNCTION {{ $s }}.raise_stream_not_found(p_function text, p_stream_id text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '%: stream % does not exist', p_function, p_stream_id
        USING ERRCODE = 'PE011', DETAIL = json_build_object('stream_id', p_stream_id)::text;
END
$$;

-- raise_stream_deleted raises PE004 for a soft-deleted or tombstoned
-- stream.
CREATE OR REPLACE FUNCTION {{ $s }}.raise_stream_deleted(p_function text, p_stream_id text, p_tombstoned boolean) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '%: stream % is %', p_function, p_stream_id,
            CASE WHEN p_tombstoned THEN 'tombstoned (deleted for good)' ELSE 'deleted (restore it with restore_stream)' END
        USING ERRCODE = 'PE004',
              DETAIL = json_build_object('stream_id', p_stream_id, 'tombstoned', p_tombstoned)::text;
END
$$;

-- note_removed records that events were removed from the log, up to
-- the position (p_transaction_id, p_global_position) (the largest
-- removed): transaction_key_base keeps the largest position ever removed
-- (a checkpoint may stay at or move to it, and new keys stay above it,
-- keys.sql); and the subscriptions' parked events whose event is gone, of
-- p_stream_id (NULL: of every stream), are resolved as 'removed' (they can
-- be neither retried nor read; health stops counting them). Called after
-- the removal, by remove_events (tombstones, retention) and
-- detach_archive_partition (archive.sql). Owner only.
CREATE OR REPLACE FUNCTION {{ $s }}.note_removed(p_stream_id text, p_transaction_id xid8, p_global_position bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE {{ $s }}.transaction_key_base AS b
       SET removed_transaction_id = p_transaction_id, removed_global_position = p_global_position
     WHERE b.removed_transaction_id IS NULL
        OR (b.removed_transaction_id, b.removed_global_position) < (p_transaction_id, p_global_position);
    UPDATE {{ $s }}.parked_events AS p SET resolved_at = now(), resolution = 'removed'
     WHERE (p_stream_id IS NULL OR p.stream_id = p_stream_id) AND p.resolved_at IS NULL
       AND NOT EXISTS (SELECT FROM {{ $s }}.all_events AS e
                        WHERE e.transaction_id = p.transaction_id AND e.global_position = p.global_position);
END
$$;

-- archive_removal_lock takes the lock on the archive that removing
-- events from it needs (ROW EXCLUSIVE: reads, appends and archive steps go
-- on), before the functions that remove events lock stream rows.
-- detach_archive_partition locks the archive (exclusively) and then the
-- rows of the streams it truncates: a removal that locked a stream's row
-- first and then waited for the archive would deadlock with it. (Appends
-- read the archive before they take their stream's row too.) Owner only.
CREATE OR REPLACE FUNCTION {{ $s }}.archive_removal_lock() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    LOCK TABLE {{ $s }}.events_archive IN ROW EXCLUSIVE MODE;
END
$$;

-- remove_events deletes the events of p_stream_id with version below
-- p_before, at most p_max of them (NULL: all), from events and then from
-- the archive, records the largest position removed in
-- transaction_key_base (removed_transaction_id, removed_global_position),
-- resolves the subscriptions' parked events whose event it removed
-- (resolution 'removed'), and returns how many events it removed. Owner
-- only.
--
-- Two statements, events first: archive_events may move the stream's
-- events from events to events_archive while this runs. The first DELETE
-- then waits for it and finds them gone; the second, with a snapshot taken
-- after, finds them in the archive. (One statement would see neither.)
CREATE OR REPLACE FUNCTION {{ $s }}.remove_events(p_stream_id text, p_before bigint, p_max bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_count    bigint;
    v_archived bigint;
    v_tx       xid8;
    v_pos      bigint;
    v_atx      xid8;
    v_apos     bigint;
BEGIN
    PERFORM set_config('es.removing_events', 'on', true);
    -- A stream's later versions have later positions (its appends are
    -- serialised on its row), so each pair of maxima is one event's
    -- position.
    WITH doomed AS (
        SELECT e.transaction_id, e.global_position
          FROM {{ $s }}.events AS e
         WHERE e.stream_id = p_stream_id AND e.version < p_before
         ORDER BY e.version
         LIMIT p_max
    ), gone AS (
        DELETE FROM {{ $s }}.events AS e
         USING doomed AS d
         WHERE e.transaction_id = d.transaction_id AND e.global_position = d.global_position
        RETURNING e.transaction_id, e.global_position
    )
    SELECT count(*), max(g.transaction_id), max(g.global_position) INTO v_count, v_tx, v_pos FROM gone AS g;
    WITH doomed AS (
        SELECT a.transaction_id, a.global_position
          FROM {{ $s }}.events_archive AS a
         WHERE a.stream_id = p_stream_id AND a.version < p_before
         ORDER BY a.version
         LIMIT p_max - v_count
    ), gone AS (
        DELETE FROM {{ $s }}.events_archive AS a
         USING doomed AS d
         WHERE a.transaction_id = d.transaction_id AND a.global_position = d.global_position
        RETURNING a.transaction_id, a.global_position
    )
    SELECT count(*), max(g.transaction_id), max(g.global_position) INTO v_archived, v_atx, v_apos FROM gone AS g;
    PERFORM set_config('es.removing_events', 'off', true);
    v_count := v_count + v_archived;
    IF v_count > 0 THEN
        IF v_tx IS NULL OR (v_atx, v_apos) > (v_tx, v_pos) THEN
            v_tx := v_atx;
            v_pos := v_apos;
        END IF;
        PERFORM {{ $s }}.note_removed(p_stream_id, v_tx, v_pos);
    END IF;
    RETURN v_count;
END
$$;

-- soft_delete_stream hides a stream from the reads by stream: read_stream,
-- read_stream_backward, load and stream_info see it as not existing (its
-- events stay in the global log). Appends to it fail with PE004 until
-- restore_stream. p_expected_version as append's. Returns the stream's
-- version. A stream already soft-deleted is left as it is; a stream that
-- does not exist raises PE011, a tombstoned one PE004.
CREATE OR REPLACE FUNCTION {{ $s }}.soft_delete_stream(p_stream_id text, p_expected_version bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_row record;
BEGIN
    SELECT * INTO v_row FROM {{ $s }}.lock_stream('soft_delete_stream', p_stream_id, p_expected_version);
    IF v_row.tombstoned_at IS NOT NULL THEN
        PERFORM {{ $s }}.raise_stream_deleted('soft_delete_stream', p_stream_id, true);
    END IF;
    IF NOT v_row.present THEN
        PERFORM {{ $s }}.raise_stream_not_found('soft_delete_stream', p_stream_id);
    END IF;
    UPDATE {{ $s }}.streams AS s SET deleted_at = coalesce(s.deleted_at, now())
     WHERE s.stream_id = p_stream_id;
    RETURN v_row.version;
END
$$;

-- restore_stream undoes soft_delete_stream: the stream reads and takes
-- appends again, at its version. Returns the stream's version. A stream
-- that is not deleted is left as it is; one that does not exist raises
-- PE011, a tombstoned one PE004.
CREATE OR REPLACE FUNCTION {{ $s }}.restore_stream(p_stream_id text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_row record;
BEGIN
    SELECT * INTO v_row FROM {{ $s }}.lock_stream('restore_stream', p_stream_id, NULL);
    IF NOT v_row.present THEN
        PERFORM {{ $s }}.raise_stream_not_found('restore_stream', p_stream_id);
    END IF;
    IF v_row.tombstoned_at IS NOT NULL THEN
        PERFORM {{ $s }}.raise_stream_deleted('restore_stream', p_stream_id, true);
    END IF;
    UPDATE {{ $s }}.streams AS s SET deleted_at = NULL
     WHERE s.stream_id = p_stream_id AND s.deleted_at IS NOT NULL;
    RETURN v_row.version;
END
$$;

-- tombstone_stream deletes a stream for good: its events and its snapshot
-- are removed now, in this transaction, and its row stays, marked, so that
-- it can never be written again (appends raise PE004) nor restored. A
-- stream id that was never used can be tombstoned too (reserving it). A
-- soft-deleted stream can be tombstoned; p_expected_version as append's (a
-- soft-deleted stream counts as not existing). Returns the number of
-- events removed. Granted to {{ $s }}_admin only.
CREATE OR REPLACE FUNCTION {{ $s }}.tombstone_stream(p_stream_id text, p_expected_version bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_row   record;
    v_count bigint;
BEGIN
    -- The archive before the stream's row: detach_archive_partition
    -- takes them in this order (archive_removal_lock).
    PERFORM {{ $s }}.archive_removal_lock();
    SELECT * INTO v_row FROM {{ $s }}.lock_stream('tombstone_stream', p_stream_id, p_expected_version);
    IF v_row.tombstoned_at IS NOT NULL THEN
        RETURN 0;
    END IF;
    IF NOT v_row.present THEN
        INSERT INTO {{ $s }}.streams AS s (stream_id, version, transaction_id, deleted_at, tombstoned_at)
        VALUES (p_stream_id, 0, '0', now(), now())
        ON CONFLICT (stream_id) DO NOTHING;
        IF NOT FOUND THEN
            -- An append created the stream meanwhile (and committed):
            -- tombstone it as the stream it now is.
            RETURN {{ $s }}.tombstone_stream(p_stream_id, p_expected_version);
        END IF;
        RETURN 0;
    END IF;
    v_count := {{ $s }}.remove_events(p_stream_id, 9223372036854775807, NULL);
    DELETE FROM {{ $s }}.snapshots AS sn WHERE sn.stream_id = p_stream_id;
    UPDATE {{ $s }}.streams AS s
       SET deleted_at = coalesce(s.deleted_at, now()), tombstoned_at = now(),
           truncate_before = s.version + 1, removed_before = s.version + 1
     WHERE s.stream_id = p_stream_id;
    RETURN v_count;
END
$$;

-- truncate_stream makes the events of a stream below version p_before
-- unreadable by stream at once (reads start at p_before), and has the next
-- apply_retention calls remove them (they stay in the global log until
-- then). The stream keeps its version; a snapshot at version p_before - 1
-- or later lets Repository.Load rebuild the aggregate. A truncation point
-- never moves back: a p_before below the current one changes nothing.
-- p_before may be at most version + 1 (everything). Returns the stream's
-- truncation point. A stream that does not exist raises PE011, a
-- soft-deleted or tombstoned one PE004. Granted to {{ $s }}_admin only.
CREATE OR REPLACE FUNCTION {{ $s }}.truncate_stream(p_stream_id text, p_before bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_row    record;
    v_before bigint;
BEGIN
    SELECT * INTO v_row FROM {{ $s }}.lock_stream('truncate_stream', p_stream_id, NULL);
    IF NOT v_row.present THEN
        PERFORM {{ $s }}.raise_stream_not_found('truncate_stream', p_stream_id);
    END IF;
    IF v_row.deleted_at IS NOT NULL THEN
        PERFORM {{ $s }}.raise_stream_deleted('truncate_stream', p_stream_id, v_row.tombstoned_at IS NOT NULL);
    END IF;
    IF p_before IS NULL OR p_before < 1 OR p_before > v_row.version + 1 THEN
        RAISE EXCEPTION 'truncate_stream: the truncation point must be between 1 and the stream''s version + 1 (%), got %',
                v_row.version + 1, coalesce(p_before::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "before"}';
    END IF;
    UPDATE {{ $s }}.streams AS s SET truncate_before = greatest(coalesce(s.truncate_before, 1), p_before)
     WHERE s.stream_id = p_stream_id
    RETURNING s.truncate_before INTO v_before;
    RETURN v_before;
END
$$;

-- check_retention_rule raises PE003 for a negative max_count or max_age.
CREATE OR REPLACE FUNCTION {{ $s }}.check_retention_rule(p_function text, p_max_count bigint, p_max_age interval) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_max_count < 0 THEN
        RAISE EXCEPTION '%: max_count must not be negative, got %', p_function, p_max_count
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "max_count"}';
    END IF;
    IF p_max_age < interval '0' THEN
        RAISE EXCEPTION '%: max_age must not be negative, got %', p_function, p_max_age
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "max_age"}';
    END IF;
END
$$;

-- set_stream_retention sets the retention policy of one stream: keep its
-- last p_max_count events and/or those younger than p_max_age (NULL: no
-- such limit; both NULL removes the policy). It replaces the stream's
-- category's policy for this stream. Nothing is removed until
-- apply_retention runs. Granted to {{ $s }}_admin only.
CREATE OR REPLACE FUNCTION {{ $s }}.set_stream_retention(p_stream_id text, p_max_count bigint, p_max_age interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_stream_argument('set_stream_retention', p_stream_id);
    PERFORM {{ $s }}.check_retention_rule('set_stream_retention', p_max_count, p_max_age);
    IF p_max_count IS NULL AND p_max_age IS NULL THEN
        DELETE FROM {{ $s }}.retention_policies AS r WHERE r.stream_id = p_stream_id;
    ELSE
        INSERT INTO {{ $s }}.retention_policies AS r (stream_id, max_count, max_age)
        VALUES (p_stream_id, p_max_count, p_max_age)
        ON CONFLICT (stream_id) WHERE stream_id IS NOT NULL
        DO UPDATE SET max_count = excluded.max_count, max_age = excluded.max_age, updated_at = now();
    END IF;
END
$$;

-- set_category_retention sets the retention policy of every stream of a
-- category (the part of the stream id before the first '-') that has no
-- policy of its own; as set_stream_retention. Granted to {{ $s }}_admin
-- only.
CREATE OR REPLACE FUNCTION {{ $s }}.set_category_retention(p_category text, p_max_count bigint, p_max_age interval)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_category IS NULL OR p_category = '' OR octet_length(p_category) > 1000 OR strpos(p_category, '-') > 0 THEN
        RAISE EXCEPTION 'set_category_retention: a category is 1 to 1000 bytes without ''-'', got %',
                coalesce(quote_literal(left(p_category, 100)), 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "category"}';
    END IF;
    PERFORM {{ $s }}.check_retention_rule('set_category_retention', p_max_count, p_max_age);
    IF p_max_count IS NULL AND p_max_age IS NULL THEN
        DELETE FROM {{ $s }}.retention_policies AS r WHERE r.category = p_category;
    ELSE
        INSERT INTO {{ $s }}.retention_policies AS r (category, max_count, max_age)
        VALUES (p_category, p_max_count, p_max_age)
        ON CONFLICT (category) WHERE category IS NOT NULL
        DO UPDATE SET max_count = excluded.max_count, max_age = excluded.max_age, updated_at = now();
    END IF;
END
$$;

-- apply_retention does one bounded step of retention and returns what it
-- did, and whether work is left that a next step can do (more); call it
-- again, each call in a transaction of its own, while more is true
-- (pgstore's ApplyRetention does). A step:
--   1. finds, without writing, up to p_max_streams streams that a policy
--      covers and whose truncation point is behind what the policy says
--      (the last max_count events; the events recorded at or after now() -
--      max_age: a stream keeps every event from its first young one on),
--      then moves their points (a stream being appended to is skipped,
--      SKIP LOCKED, and left to a later step);
--   2. removes up to p_max_events events below their streams' truncation
--      points (policies', truncate_stream's), from up to p_max_streams
--      streams.
-- The search starts from the policies: streams with a policy of their own
-- are found by key; a category policy reads the streams table (there is no
-- index by category), and only then. Each stream row it changes is locked
-- until the step's transaction ends, as an append would lock it; events
-- are removed by primary key. Granted to {{ $s }}_admin only.
CREATE OR REPLACE FUNCTION {{ $s }}.apply_retention(p_max_events int DEFAULT 1000, p_max_streams int DEFAULT 100)
RETURNS TABLE (streams_truncated bigint, events_removed bigint, more boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_ids     text[];
    v_points  bigint[];
    v_stream  record;
    v_left    bigint;
    v_removed bigint;
BEGIN
    IF p_max_events IS NULL OR p_max_events < 1 THEN
        RAISE EXCEPTION 'apply_retention: max_events must be at least 1, got %', coalesce(p_max_events::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "max_events"}';
    END IF;
    IF p_max_streams IS NULL OR p_max_streams < 1 THEN
        RAISE EXCEPTION 'apply_retention: max_streams must be at least 1, got %', coalesce(p_max_streams::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "max_streams"}';
    END IF;
    -- The archive before any stream's row (see tombstone_stream).
    PERFORM {{ $s }}.archive_removal_lock();
    streams_truncated := 0;
    events_removed := 0;

    -- 1. Policies to truncation points: first the streams that are due,
    -- read before anything is written (a long read in a transaction that
    -- has written would hold the log's horizon back), then their rows.
    WITH covered AS (
        SELECT s.stream_id, s.version, s.truncate_before, r.max_count, r.max_age
          FROM {{ $s }}.retention_policies AS r
          JOIN {{ $s }}.streams AS s ON s.stream_id = r.stream_id
         WHERE r.stream_id IS NOT NULL AND s.deleted_at IS NULL
        UNION ALL
        SELECT s.stream_id, s.version, s.truncate_before, r.max_count, r.max_age
          FROM {{ $s }}.retention_policies AS r
          JOIN {{ $s }}.streams AS s ON split_part(s.stream_id, '-', 1) = r.category
         WHERE r.category IS NOT NULL AND s.deleted_at IS NULL
           AND NOT EXISTS (SELECT FROM {{ $s }}.retention_policies AS o WHERE o.stream_id = s.stream_id)
    ), due AS (
        SELECT c.stream_id,
               greatest(CASE WHEN c.max_count IS NOT NULL THEN c.version - c.max_count + 1 END,
                        CASE WHEN c.max_age IS NOT NULL THEN
                            coalesce((SELECT e.version FROM {{ $s }}.all_events AS e
                                       WHERE e.stream_id = c.stream_id
                                         AND e.version >= coalesce(c.truncate_before, 1)
                                         AND e.recorded_at >= now() - c.max_age
                                       ORDER BY e.version LIMIT 1),
                                     c.version + 1) END) AS point,
               coalesce(c.truncate_before, 1) AS current_point
          FROM covered AS c
    )
    SELECT array_agg(d.stream_id), array_agg(d.point) INTO v_ids, v_points
      FROM (SELECT d.stream_id, d.point FROM due AS d WHERE d.point > d.current_point LIMIT p_max_streams) AS d;
    FOR i IN 1 .. coalesce(cardinality(v_ids), 0) LOOP
        PERFORM FROM {{ $s }}.streams AS s WHERE s.stream_id = v_ids[i] FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        UPDATE {{ $s }}.streams AS s
           SET truncate_before = greatest(coalesce(s.truncate_before, 1), least(v_points[i], s.version + 1))
         WHERE s.stream_id = v_ids[i];
        streams_truncated := streams_truncated + 1;
    END LOOP;

    -- 2. Truncation points to removed events.
    v_left := p_max_events;
    FOR v_stream IN
        SELECT s.stream_id, s.truncate_before
          FROM {{ $s }}.streams AS s
         WHERE coalesce(s.removed_before, 1) < coalesce(s.truncate_before, 1)
         LIMIT p_max_streams
         FOR UPDATE SKIP LOCKED
    LOOP
        EXIT WHEN v_left <= 0;
        v_removed := {{ $s }}.remove_events(v_stream.stream_id, v_stream.truncate_before, v_left);
        events_removed := events_removed + v_removed;
        v_left := v_left - v_removed;
        IF v_left > 0 OR NOT EXISTS (SELECT FROM {{ $s }}.all_events AS e
                                      WHERE e.stream_id = v_stream.stream_id AND e.version < v_stream.truncate_before) THEN
            -- Every event below the point is gone: the stream leaves the
            -- work list (a later step would spend its place on it).
            UPDATE {{ $s }}.streams AS s SET removed_before = v_stream.truncate_before
             WHERE s.stream_id = v_stream.stream_id;
        END IF;
    END LOOP;
    -- More to do: the streams found due filled the step (more may be due),
    -- or a stream still has events to remove and is not being appended to
    -- (one that is, a later run gets: a step never waits for appends, and
    -- a run never waits for them either).
    PERFORM FROM {{ $s }}.streams AS s
      WHERE coalesce(s.removed_before, 1) < coalesce(s.truncate_before, 1)
      LIMIT 1
      FOR UPDATE SKIP LOCKED;
    more := FOUND OR streams_truncated >= p_max_streams;
    RETURN NEXT;
END
$$;
