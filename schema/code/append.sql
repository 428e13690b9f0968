{{- $s := .schema | default "es" -}}
-- es: the append path.
--
-- SQLSTATEs raised (class PE, "event store"):
--   PE001  wrong expected version   DETAIL: {"stream_id", "expected", "actual"}
--   PE002  duplicate event id       DETAIL: {"stream_id", "stored_stream_id", "found", "count"}
--   PE003  invalid argument         DETAIL: {"argument", ...}
--   PE004  stream deleted           DETAIL: {"stream_id", "tombstoned"} (lifecycle.sql)
--   PE005  events are immutable (UPDATE/DELETE/TRUNCATE on events)
--   PE009  the log's transaction keys cannot continue (keys.sql)
--
-- The writing functions are SECURITY DEFINER (they run as the schema's
-- owner, so callers need no privilege on the tables) and pin search_path
-- to pg_catalog, pg_temp: their bodies name every object of the schema in
-- full, and nothing a caller puts in its search_path can be resolved
-- instead of a pg_catalog function or operator.

-- append appends a batch of events to one stream atomically and returns the
-- stream's new version and the batch's positions.
--
-- expected_version: NULL = any; -1 = the stream must exist; 0 = it must not
-- exist; n > 0 = it must be at version n. The check happens under the
-- stream row's lock and before any global position is taken. A
-- soft-deleted or tombstoned stream takes no append (PE004), whatever the
-- expected version.
--
-- Idempotent: when every event id is already stored in this stream as one
-- contiguous run in the given order, consistent with expected_version, the
-- original result is returned and nothing is written.
--
-- schema_versions: each event's schema version (the version of its type's
-- shape, 1 or more), or NULL for all 1 (what the callers of the six-argument
-- form, before versions, get).
CREATE OR REPLACE FUNCTION {{ $s }}.append(
    p_stream_id        text,
    p_expected_version bigint,
    p_event_ids        uuid[],
    p_event_types      text[],
    p_data             bytea[],
    p_metadata         bytea[] DEFAULT NULL,
    p_schema_versions  int[]   DEFAULT NULL
) RETURNS TABLE (
    stream_version bigint,
    last_position  bigint,
    transaction_id xid8,
    first_version  bigint,
    first_position bigint,
    first_transaction_id xid8
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_n        int := coalesce(cardinality(p_event_ids), 0);
    v_version  bigint;
    v_k        xid8;
    v_new      boolean;
    v_inserted bigint;
    v_min_pos  bigint;
    v_max_pos  bigint;
    v_found    bigint;
    v_in_other text;
    v_min_ver  bigint;
    v_max_ver  bigint;
    v_ordered  boolean;
    v_run_k    xid8;
    v_first_k  xid8;
    v_key      xid8;
    v_payload  text;
    v_notify   text;
    v_constraint text;
    v_deleted_at    timestamptz;
    v_tombstoned_at timestamptz;
BEGIN
    -- Arguments. One expression (PL/pgSQL evaluates it without starting a
    -- query) that holds for every well-formed call; only when it does not
    -- do the checks below run, one by one, to raise the typed error (or
    -- find nothing wrong: the expression is stricter than they are).
    IF NOT coalesce(octet_length(p_stream_id) BETWEEN 1 AND 1000
                    AND (p_expected_version IS NULL OR p_expected_version >= -1)
                    AND array_ndims(p_event_ids) = 1 AND array_lower(p_event_ids, 1) = 1
                    AND array_ndims(p_event_types) = 1 AND array_lower(p_event_types, 1) = 1
                    AND array_ndims(p_data) = 1 AND array_lower(p_data, 1) = 1
                    AND cardinality(p_event_types) = v_n AND cardinality(p_data) = v_n
                    AND (p_metadata IS NULL OR (array_ndims(p_metadata) = 1 AND array_lower(p_metadata, 1) = 1
                                                AND cardinality(p_metadata) = v_n))
                    AND (p_schema_versions IS NULL OR (array_ndims(p_schema_versions) = 1
                                                       AND array_lower(p_schema_versions, 1) = 1
                                                       AND cardinality(p_schema_versions) = v_n
                                                       AND array_position(p_schema_versions, NULL) IS NULL
                                                       AND 1 <= ALL (p_schema_versions)))
                    AND array_position(p_event_ids, NULL) IS NULL
                    AND array_position(p_event_types, NULL) IS NULL AND array_position(p_event_types, '') IS NULL
                    AND array_position(p_data, NULL) IS NULL,
                    false) THEN
        IF p_stream_id IS NULL OR p_stream_id = '' THEN
            RAISE EXCEPTION 'append: stream id must not be null or empty'
                USING ERRCODE = 'PE003', DETAIL = '{"argument": "stream_id"}';
        END IF;
        IF octet_length(p_stream_id) > 1000 THEN
            RAISE EXCEPTION 'append: stream id is % bytes, more than 1000', octet_length(p_stream_id)
                USING ERRCODE = 'PE003', DETAIL = '{"argument": "stream_id"}';
        END IF;
        IF p_expected_version < -1 THEN
            RAISE EXCEPTION 'append: expected version % is invalid (use NULL, -1, 0 or a version)', p_expected_version
                USING ERRCODE = 'PE003', DETAIL = '{"argument": "expected_version"}';
        END IF;
        IF v_n = 0 THEN
            RAISE EXCEPTION 'append: no events to append to stream %', p_stream_id
                USING ERRCODE = 'PE003', DETAIL = '{"argument": "event_ids"}';
        END IF;
        IF array_ndims(p_event_ids) <> 1 OR array_lower(p_event_ids, 1) <> 1
           OR coalesce(array_ndims(p_event_types), 0) <> 1 OR array_lower(p_event_types, 1) <> 1
           OR coalesce(array_ndims(p_data), 0) <> 1 OR array_lower(p_data, 1) <> 1
           OR cardinality(p_event_types) <> v_n OR cardinality(p_data) <> v_n
           OR (p_metadata IS NOT NULL AND (array_ndims(p_metadata) <> 1 OR array_lower(p_metadata, 1) <> 1
                                           OR cardinality(p_metadata) <> v_n))
           OR (p_schema_versions IS NOT NULL AND (coalesce(array_ndims(p_schema_versions), 0) <> 1
                                                  OR array_lower(p_schema_versions, 1) <> 1
                                                  OR cardinality(p_schema_versions) <> v_n)) THEN
            RAISE EXCEPTION 'append: event_ids, event_types, data (and metadata and schema_versions when given) must be one-dimensional arrays of the same length, indexed from 1'
                USING ERRCODE = 'PE003', DETAIL = '{"argument": "arrays"}';
        END IF;
        IF array_position(p_event_ids, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'append: event ids must not be null'
                USING ERRCODE = 'PE003', DETAIL = '{"argument": "event_ids"}';
        END IF;
        IF array_position(p_event_types, NULL) IS NOT NULL OR array_position(p_event_types, '') IS NOT NULL THEN
            RAISE EXCEPTION 'append: event types must not be null or empty'
                USING ERRCODE = 'PE003', DETAIL = '{"argument": "event_types"}';
        END IF;
        IF array_position(p_data, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'append: event data must not be null (use an empty bytea)'
                USING ERRCODE = 'PE003', DETAIL = '{"argument": "data"}';
        END IF;
        -- Expressions, not queries: a batch that gives versions costs no query
        -- for them, one that does not (NULL) two tests.
        IF p_schema_versions IS NOT NULL
           AND (array_position(p_schema_versions, NULL) IS NOT NULL OR 1 > ANY (p_schema_versions)) THEN
            RAISE EXCEPTION 'append: schema versions must not be null and must be at least 1 (pass NULL for all 1)'
                USING ERRCODE = 'PE003', DETAIL = '{"argument": "schema_versions"}';
        END IF;
    END IF;
    -- An event id twice in a batch is refused (PE003) before any other
    -- error is reported, as if checked here: not by a query on every
    -- batch, but by the unique index on event_id, which refuses the
    -- batch's insert, and by a query only on the paths that raise or
    -- replay (the slow path below, which a deleted stream takes too).

    -- This transaction's key: the key base plus its xid, the base raised
    -- first when the log's keys are ahead of this cluster's counter
    -- (keys.sql). One statement: it runs on every append. The largest key
    -- is log_max_key() (archive.sql), inline here: the archive's is read
    -- only once events were archived (the archive keeps older events than
    -- events, so its largest key matters only when events is empty).
    SELECT (CASE WHEN {{ $s }}.keys_behind(b.base, greatest((SELECT max(e.transaction_id) FROM {{ $s }}.events AS e),
                                                            CASE WHEN b.archived THEN (SELECT max(a.transaction_id) FROM {{ $s }}.events_archive AS a) END,
                                                            b.removed_transaction_id))
                 THEN {{ $s }}.raise_key_base() ELSE b.base END
            + pg_current_xact_id()::text::bigint)::text::xid8
      INTO STRICT v_key
      FROM {{ $s }}.transaction_key_base AS b;

    -- Take the stream row: appends to one stream serialise on it, appends
    -- to different streams never wait on each other. For an existing
    -- stream, one compare-and-set UPDATE checks the expected version (after
    -- waiting for the row lock, against the committed row) and takes the
    -- new versions and the transaction key; a new stream's row is inserted
    -- with its final version (a concurrent creator makes us loop once). If
    -- the events cannot all be inserted below, the call raises and undoes
    -- this, or (a replay) restores the row.
    LOOP
        UPDATE {{ $s }}.streams AS s
           SET version = s.version + v_n,
               transaction_id = greatest(v_key, s.transaction_id),
               updated_at = now()
         WHERE s.stream_id = p_stream_id
           AND (p_expected_version IS NULL
                OR (p_expected_version = -1 AND s.version > 0)
                OR s.version = p_expected_version)
           AND s.deleted_at IS NULL
        RETURNING s.version - v_n, s.transaction_id INTO v_version, v_k;
        IF FOUND THEN
            v_new := false;
            EXIT;
        END IF;

        -- No row, the version check failed, or the stream is deleted
        -- (lifecycle.sql: soft-deleted until restored, or tombstoned).
        SELECT s.version, s.deleted_at, s.tombstoned_at INTO v_version, v_deleted_at, v_tombstoned_at
          FROM {{ $s }}.streams AS s WHERE s.stream_id = p_stream_id;
        IF FOUND THEN
            IF v_deleted_at IS NOT NULL THEN
                EXIT; -- refused (PE004) on the slow path, after its batch check
            END IF;
            IF p_expected_version IS NULL
               OR (p_expected_version = -1 AND v_version > 0)
               OR v_version = p_expected_version THEN
                -- The row was created (and committed) after the UPDATE
                -- took its snapshot: try again against it.
                CONTINUE;
            END IF;
            EXIT; -- a version mismatch (or a replay): the slow path below
        END IF;
        v_version := 0;
        IF p_expected_version IS NOT NULL AND p_expected_version <> 0 THEN
            EXIT; -- the stream must exist
        END IF;
        v_k := v_key;
        INSERT INTO {{ $s }}.streams AS s (stream_id, version, transaction_id)
        VALUES (p_stream_id, v_n, v_k)
        ON CONFLICT (stream_id) DO NOTHING;
        IF FOUND THEN
            v_new := true;
            EXIT;
        END IF;
        -- Another transaction created the stream meanwhile and has
        -- committed: try again against its row.
        v_k := NULL;
    END LOOP;

    IF v_k IS NOT NULL THEN
        -- Positions are taken only now. An event id that is stored
        -- already (a retry, or a client error) is not inserted (one event:
        -- ON CONFLICT skips it; a batch: below); the count tells.
        -- An id in the archive (archive.sql) is skipped as well, once
        -- events were ever archived: the INSERT looks it up itself, with
        -- its own snapshot, taken after it got its lock on events, which
        -- an archive step holds against it (SHARE ROW EXCLUSIVE) while it
        -- moves events; so an id the step moved is seen in the archive,
        -- never missed in between.
        IF v_n = 1 THEN
            INSERT INTO {{ $s }}.events AS e
                   (transaction_id, stream_id, version, event_id, event_type, data, metadata, schema_version)
            SELECT v_k, p_stream_id, v_version + 1, p_event_ids[1], p_event_types[1], p_data[1], p_metadata[1],
                   coalesce(p_schema_versions[1], 1)
             WHERE NOT (SELECT b.archived FROM {{ $s }}.transaction_key_base AS b)
                OR NOT EXISTS (SELECT FROM {{ $s }}.events_archive AS a WHERE a.event_id = p_event_ids[1])
            ON CONFLICT (event_id) DO NOTHING
            RETURNING e.global_position INTO v_max_pos;
            GET DIAGNOSTICS v_inserted = ROW_COUNT;
            v_min_pos := v_max_pos;
        ELSE
            -- A batch: a plain INSERT, whose unique index on event_id
            -- refuses a stored id (after waiting for an appending
            -- transaction that holds it, as ON CONFLICT would), in a block
            -- that catches that refusal: one subtransaction per batch
            -- instead of a speculative insertion per event (measured in
            -- docs/benchmarks.md). A refused batch leaves no row (the
            -- block undoes its insert) and goes to the slow path as one
            -- of which ON CONFLICT skipped every row.
            BEGIN
                WITH ins AS (
                    INSERT INTO {{ $s }}.events AS e
                           (transaction_id, stream_id, version, event_id, event_type, data, metadata, schema_version)
                    SELECT v_k, p_stream_id, v_version + u.ord, u.id, u.typ, u.dat, u.meta, coalesce(u.sv, 1)
                      FROM unnest(p_event_ids, p_event_types, p_data, p_metadata, p_schema_versions)
                           WITH ORDINALITY AS u(id, typ, dat, meta, sv, ord)
                     WHERE NOT (SELECT b.archived FROM {{ $s }}.transaction_key_base AS b)
                        OR NOT EXISTS (SELECT FROM {{ $s }}.events_archive AS a WHERE a.event_id = u.id)
                     ORDER BY u.ord
                    RETURNING e.global_position
                )
                SELECT count(*), min(ins.global_position), max(ins.global_position)
                  INTO v_inserted, v_min_pos, v_max_pos
                  FROM ins;
            EXCEPTION WHEN unique_violation THEN
                GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
                IF v_constraint IS DISTINCT FROM 'events_event_id_key' THEN
                    RAISE;
                END IF;
                v_inserted := 0;
            END;
        END IF;

        IF v_inserted = v_n THEN

            -- Wake listeners. Coalesced: only one in-flight appending
            -- transaction at a time notifies (the one holding the lock of
            -- the notify_token row until it ends); listeners re-read from
            -- their checkpoint, so one wake-up covers all. The lock is a
            -- row lock that only the schema's owner can take (an advisory
            -- lock could be held by any login, silencing every wake-up).
            -- SET es.notify = off (per database, role or session)
            -- disables it; any spelling PostgreSQL accepts for boolean
            -- false counts, anything else (unset, empty, a typo) keeps
            -- notifications on. A notification queue more than half full
            -- (a listener that stopped reading, e.g. a login that LISTENs
            -- inside a transaction left open) is not added to: a full
            -- queue would make this commit fail; listeners poll anyway.
            v_notify := lower(btrim(current_setting('es.notify', true)));
            IF (v_notify IS NULL OR v_notify NOT IN ('off', 'of', 'false', 'fals', 'fal', 'fa', 'f', 'no', 'n', '0'))
               AND pg_notification_queue_usage() < 0.5 THEN
                PERFORM FROM {{ $s }}.notify_token AS t FOR NO KEY UPDATE SKIP LOCKED;
                IF FOUND THEN
                    -- Assignments, not PERFORM: PL/pgSQL evaluates them as
                    -- simple expressions, without starting a query. The
                    -- payload is minimal unless es.notify_payload = full:
                    -- any login may LISTEN on the channel, so by default it
                    -- carries only the position, no stream id. A full
                    -- payload must stay under 8000 bytes: JSON escapes can
                    -- make a 1000-byte stream id up to six times longer, so
                    -- the category (a prefix of the stream id) is left out
                    -- when it would not fit.
                    IF current_setting('es.notify_payload', true) = 'full' THEN
                        v_payload := format('{"stream_id": %s, "category": %s, "version": %s, "position": "%s/%s"}',
                                            to_json(p_stream_id), to_json(split_part(p_stream_id, '-', 1)),
                                            v_version + v_n, v_k, v_max_pos);
                        IF octet_length(v_payload) >= 8000 THEN
                            v_payload := format('{"stream_id": %s, "version": %s, "position": "%s/%s"}',
                                                to_json(p_stream_id), v_version + v_n, v_k, v_max_pos);
                        END IF;
                    ELSE
                        v_payload := format('{"position": "%s/%s"}', v_k, v_max_pos);
                    END IF;
                    v_notify := pg_notify('{{ $s }}_events', v_payload)::text;
                END IF;
            END IF;

            stream_version := v_version + v_n;
            last_position  := v_max_pos;
            transaction_id := v_k;
            first_version  := v_version + 1;
            first_position := v_min_pos;
            first_transaction_id := v_k;
            RETURN NEXT;
            RETURN;
        END IF;
        -- Some ids are stored already. Whatever happens next, nothing
        -- written above may stay: below, a replay returns only when this
        -- call inserted no event into an existing stream (a new stream
        -- holds none of the ids, so it never replays), and every other path
        -- raises, which undoes the call.
    END IF;

    -- The slow path: the version check failed, the stream is deleted, or
    -- some event ids are stored (or appear twice in the batch: refused
    -- first, see the arguments).
    IF v_n > 1 AND (SELECT count(DISTINCT u) FROM unnest(p_event_ids) AS u) <> v_n THEN
        RAISE EXCEPTION 'append: an event id appears twice in the batch for stream %', p_stream_id
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "event_ids"}';
    END IF;
    IF v_deleted_at IS NOT NULL THEN
        PERFORM {{ $s }}.raise_stream_deleted('append', p_stream_id, v_tombstoned_at IS NOT NULL);
    END IF;
    -- Replay: every id stored in this stream, as one contiguous run in the
    -- given order, consistent with the expected version: return the
    -- original result and write nothing.
    SELECT count(*),
           min(e.stream_id) FILTER (WHERE e.stream_id <> p_stream_id),
           min(e.version), max(e.version),
           min(e.version - u.ord) = max(e.version - u.ord),
           min(e.global_position), max(e.global_position),
           min(e.transaction_id), max(e.transaction_id)
      INTO v_found, v_in_other, v_min_ver, v_max_ver, v_ordered, v_min_pos, v_max_pos, v_first_k, v_run_k
      FROM unnest(p_event_ids) WITH ORDINALITY AS u(id, ord)
      JOIN {{ $s }}.all_events AS e ON e.event_id = u.id;

    IF v_found = v_n AND v_in_other IS NULL AND v_ordered
       AND v_max_ver - v_min_ver = v_n - 1
       AND (v_inserted IS NULL OR v_inserted = 0)
       AND (p_expected_version IS NULL
            OR (p_expected_version = -1 AND v_min_ver >= 2)
            OR (p_expected_version >= 0 AND v_min_ver = p_expected_version + 1)) THEN
        IF v_k IS NOT NULL THEN
            -- The UPDATE above took the row for this call: put back what
            -- the stream's last event says it was.
            UPDATE {{ $s }}.streams AS s
               SET version = v_version, transaction_id = e.transaction_id, updated_at = e.recorded_at
              FROM {{ $s }}.all_events AS e
             WHERE s.stream_id = p_stream_id AND e.stream_id = p_stream_id AND e.version = v_version;
        END IF;
        stream_version := v_max_ver;
        last_position  := v_max_pos;
        transaction_id := v_run_k;
        first_version  := v_min_ver;
        first_position := v_min_pos;
        -- A stream's keys never decrease with its versions, so the run's
        -- smallest and largest keys are its first and last events' keys
        -- (they differ when the run spans appends of several transactions).
        first_transaction_id := v_first_k;
        RETURN NEXT;
        RETURN;
    END IF;

    IF v_found > 0 THEN
        RAISE EXCEPTION 'append: % of % event ids are already stored%, and this is not a retry of the append that stored them',
                v_found - coalesce(v_inserted, 0), v_n,
                CASE WHEN v_in_other IS NULL THEN '' ELSE format(' (in stream %s)', v_in_other) END
            USING ERRCODE = 'PE002',
                  DETAIL = json_build_object('stream_id', p_stream_id, 'stored_stream_id', coalesce(v_in_other, p_stream_id),
                                             'found', v_found - coalesce(v_inserted, 0), 'count', v_n)::text;
    END IF;

    RAISE EXCEPTION 'append: wrong expected version for stream %: expected %, actual %',
            p_stream_id,
            CASE p_expected_version WHEN -1 THEN 'stream exists' WHEN 0 THEN 'no stream' ELSE p_expected_version::text END,
            v_version
        USING ERRCODE = 'PE001',
              DETAIL = json_build_object('stream_id', p_stream_id, 'expected', p_expected_version, 'actual', v_version)::text;
END
$$;

-- append with a snapshot: appends like the seven-argument append and, in the
-- same transaction, stores p_snapshot_state (the aggregate's state after
-- these events, in the shape p_snapshot_schema_version names) as the
-- stream's snapshot at the stream's new version. The snapshot never makes
-- the append fail: when the stream already has a newer snapshot it is kept
-- and this one is skipped. Both snapshot arguments NULL: no snapshot. An
-- idempotent retry stores the snapshot at the version of the retried run's
-- last event (when nothing newer is stored). Returns what append returns.
CREATE OR REPLACE FUNCTION {{ $s }}.append(
    p_stream_id               text,
    p_expected_version        bigint,
    p_event_ids               uuid[],
    p_event_types             text[],
    p_data                    bytea[],
    p_metadata                bytea[],
    p_snapshot_schema_version int,
    p_snapshot_state          bytea,
    p_schema_versions         int[] DEFAULT NULL
) RETURNS TABLE (
    stream_version bigint,
    last_position  bigint,
    transaction_id xid8,
    first_version  bigint,
    first_position bigint,
    first_transaction_id xid8
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (p_snapshot_schema_version IS NULL) <> (p_snapshot_state IS NULL) THEN
        RAISE EXCEPTION 'append: give both the snapshot schema version and the snapshot state, or neither'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "snapshot"}';
    END IF;

    SELECT a.stream_version, a.last_position, a.transaction_id,
           a.first_version, a.first_position, a.first_transaction_id
      INTO stream_version, last_position, transaction_id,
           first_version, first_position, first_transaction_id
      FROM {{ $s }}.append(p_stream_id, p_expected_version, p_event_ids, p_event_types, p_data, p_metadata,
                           p_schema_versions) AS a;

    IF p_snapshot_state IS NOT NULL THEN
        -- The append holds the stream's row lock: the stream is at
        -- stream_version until this transaction ends.
        PERFORM {{ $s }}.store_snapshot(p_stream_id, stream_version, p_snapshot_schema_version, p_snapshot_state);
    END IF;
    RETURN NEXT;
END
$$;

-- append_event appends one event: the form for hand-written SQL. A NULL
-- schema version is version 1, like the default.
--   SELECT * FROM es.append_event('order-1', 'OrderPlaced', '\x80'::bytea);
--   SELECT * FROM es.append_event('user-1', 'UserCreated', '\x80'::bytea, p_schema_version => 2);
CREATE OR REPLACE FUNCTION {{ $s }}.append_event(
    p_stream_id        text,
    p_event_type       text,
    p_data             bytea,
    p_metadata         bytea  DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_event_id         uuid   DEFAULT gen_random_uuid(),
    p_schema_version   int    DEFAULT 1
) RETURNS TABLE (
    stream_version bigint,
    last_position  bigint,
    transaction_id xid8,
    first_version  bigint,
    first_position bigint,
    first_transaction_id xid8
)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM {{ $s }}.append(p_stream_id, p_expected_version, ARRAY[p_event_id], ARRAY[p_event_type],
                                  ARRAY[p_data], CASE WHEN p_metadata IS NULL THEN NULL ELSE ARRAY[p_metadata] END,
                                  CASE WHEN p_schema_version IS NULL THEN NULL ELSE ARRAY[p_schema_version] END)
$$;
