-- es: the append path. Reference definition for schema es; migrations/002_append.sql is the migration.
--
-- SQLSTATEs raised (class PE, "event store"):
--   PE001  wrong expected version   DETAIL: {"stream_id", "expected", "actual"}
--   PE002  duplicate event id       DETAIL: {"stream_id", "stored_stream_id", "found", "count"}
--   PE003  invalid argument         DETAIL: {"argument", ...}
--   PE004  stream deleted (reserved)
--   PE005  events are immutable (UPDATE/DELETE/TRUNCATE on events)

-- append appends a batch of events to one stream atomically and returns the
-- stream's new version and the batch's positions.
--
-- expected_version: NULL = any; -1 = the stream must exist; 0 = it must not
-- exist; n > 0 = it must be at version n. The check happens under the
-- stream row's lock and before any global position is taken.
--
-- Idempotent: when every event id is already stored in this stream as one
-- contiguous run in the given order, consistent with expected_version, the
-- original result is returned and nothing is written.
CREATE FUNCTION es.append(
    p_stream_id        text,
    p_expected_version bigint,
    p_event_ids        uuid[],
    p_event_types      text[],
    p_data             bytea[],
    p_metadata         bytea[] DEFAULT NULL
) RETURNS TABLE (
    stream_version bigint,
    last_position  bigint,
    transaction_id xid8,
    first_version  bigint,
    first_position bigint
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_n        int := coalesce(cardinality(p_event_ids), 0);
    v_version  bigint;
    v_prev_k   xid8;
    v_k        xid8;
    v_found    int;
    v_in_other text;
    v_min_ver  bigint;
    v_max_ver  bigint;
    v_ordered  boolean;
    v_min_pos  bigint;
    v_max_pos  bigint;
    v_run_k    xid8;
    v_new      boolean := false;
    v_notify   text;
BEGIN
    -- Arguments.
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
    IF array_ndims(p_event_ids) <> 1
       OR coalesce(cardinality(p_event_types), -1) <> v_n
       OR coalesce(cardinality(p_data), -1) <> v_n
       OR (p_metadata IS NOT NULL AND cardinality(p_metadata) <> v_n) THEN
        RAISE EXCEPTION 'append: event_ids, event_types, data (and metadata when given) must be one-dimensional arrays of the same length'
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
    IF v_n > 1 AND (SELECT count(DISTINCT u) FROM unnest(p_event_ids) AS u) <> v_n THEN
        RAISE EXCEPTION 'append: an event id appears twice in the batch for stream %', p_stream_id
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "event_ids"}';
    END IF;

    -- Lock the stream row: appends to one stream serialise here, appends to
    -- different streams never wait on each other. A new stream is created
    -- below, after the checks; a concurrent creator makes us loop once.
    LOOP
        SELECT s.version, s.transaction_id INTO v_version, v_prev_k
          FROM es.streams AS s
         WHERE s.stream_id = p_stream_id
           FOR UPDATE;
        v_new := NOT FOUND;
        IF v_new THEN
            v_version := 0;
        END IF;

        -- Idempotency: are any of these ids stored already?
        SELECT count(*),
               min(e.stream_id) FILTER (WHERE e.stream_id <> p_stream_id),
               min(e.version), max(e.version),
               min(e.version - u.ord) = max(e.version - u.ord),
               min(e.global_position), max(e.global_position),
               max(e.transaction_id)
          INTO v_found, v_in_other, v_min_ver, v_max_ver, v_ordered, v_min_pos, v_max_pos, v_run_k
          FROM unnest(p_event_ids) WITH ORDINALITY AS u(id, ord)
          JOIN es.events AS e ON e.event_id = u.id;

        IF v_found > 0 THEN
            IF v_found = v_n AND v_in_other IS NULL AND v_ordered
               AND v_max_ver - v_min_ver = v_n - 1
               AND (p_expected_version IS NULL
                    OR (p_expected_version = -1 AND v_min_ver >= 2)
                    OR (p_expected_version >= 0 AND v_min_ver = p_expected_version + 1)) THEN
                -- An exact retry: the original result, nothing written.
                RETURN QUERY SELECT v_max_ver, v_max_pos, v_run_k, v_min_ver, v_min_pos;
                RETURN;
            END IF;
            RAISE EXCEPTION 'append: % of % event ids are already stored%, and this is not a retry of the append that stored them',
                    v_found, v_n, CASE WHEN v_in_other IS NULL THEN '' ELSE format(' (in stream %s)', v_in_other) END
                USING ERRCODE = 'PE002',
                      DETAIL = json_build_object('stream_id', p_stream_id, 'stored_stream_id', coalesce(v_in_other, p_stream_id),
                                                 'found', v_found, 'count', v_n)::text;
        END IF;

        -- The expected-version check, before any position is taken.
        IF p_expected_version IS NOT NULL
           AND ((p_expected_version = -1 AND v_version = 0)
                OR (p_expected_version >= 0 AND v_version <> p_expected_version)) THEN
            RAISE EXCEPTION 'append: wrong expected version for stream %: expected %, actual %',
                    p_stream_id,
                    CASE p_expected_version WHEN -1 THEN 'stream exists' WHEN 0 THEN 'no stream' ELSE p_expected_version::text END,
                    v_version
                USING ERRCODE = 'PE001',
                      DETAIL = json_build_object('stream_id', p_stream_id, 'expected', p_expected_version, 'actual', v_version)::text;
        END IF;

        v_k := greatest(pg_current_xact_id(), v_prev_k);

        IF NOT v_new THEN
            UPDATE es.streams AS s
               SET version = v_version + v_n, transaction_id = v_k, updated_at = now()
             WHERE s.stream_id = p_stream_id;
            EXIT;
        END IF;

        INSERT INTO es.streams AS s (stream_id, version, transaction_id)
        VALUES (p_stream_id, v_n, v_k)
        ON CONFLICT (stream_id) DO NOTHING;
        EXIT WHEN FOUND;
        -- Another transaction created the stream meanwhile (and has
        -- committed): check again against its row.
    END LOOP;

    -- Positions are taken only now. ON CONFLICT guards against an event id
    -- stored concurrently in another stream: such a row is skipped, the
    -- count below then differs and the whole call fails with PE002.
    WITH ins AS (
        INSERT INTO es.events AS e
               (transaction_id, stream_id, version, event_id, event_type, data, metadata)
        SELECT v_k, p_stream_id, v_version + u.ord, u.id, u.typ, u.dat, u.meta
          FROM unnest(p_event_ids, p_event_types, p_data, p_metadata) WITH ORDINALITY AS u(id, typ, dat, meta, ord)
         ORDER BY u.ord
        ON CONFLICT (event_id) DO NOTHING
        RETURNING e.global_position
    )
    SELECT count(*), min(ins.global_position), max(ins.global_position)
      INTO v_found, v_min_pos, v_max_pos
      FROM ins;
    IF v_found <> v_n THEN
        RAISE EXCEPTION 'append: an event id was stored concurrently by another append'
            USING ERRCODE = 'PE002',
                  DETAIL = json_build_object('stream_id', p_stream_id, 'found', v_n - v_found, 'count', v_n)::text;
    END IF;

    -- Wake listeners. Coalesced: only one in-flight appending transaction
    -- at a time notifies (the one holding the advisory lock until it ends);
    -- listeners re-read from their checkpoint, so one wake-up covers all.
    -- SET es.notify = off (per database, role or session) disables it; any
    -- spelling PostgreSQL accepts for boolean false counts, anything else
    -- (unset, empty, a typo) keeps notifications on.
    v_notify := lower(btrim(current_setting('es.notify', true)));
    IF (v_notify IS NULL OR v_notify NOT IN ('off', 'of', 'false', 'fals', 'fal', 'fa', 'f', 'no', 'n', '0'))
       AND pg_try_advisory_xact_lock(hashtextextended('es_events', 0)) THEN
        PERFORM pg_notify('es_events',
            json_build_object('stream_id', p_stream_id, 'category', split_part(p_stream_id, '-', 1),
                              'version', v_version + v_n, 'position', v_k::text || '/' || v_max_pos)::text);
    END IF;

    RETURN QUERY SELECT v_version + v_n, v_max_pos, v_k, v_version + 1, v_min_pos;
END
$$;

-- append_event appends one event: the form for hand-written SQL.
--   SELECT * FROM es.append_event('order-1', 'OrderPlaced', '\x80'::bytea);
CREATE FUNCTION es.append_event(
    p_stream_id        text,
    p_event_type       text,
    p_data             bytea,
    p_metadata         bytea  DEFAULT NULL,
    p_expected_version bigint DEFAULT NULL,
    p_event_id         uuid   DEFAULT gen_random_uuid()
) RETURNS TABLE (
    stream_version bigint,
    last_position  bigint,
    transaction_id xid8,
    first_version  bigint,
    first_position bigint
)
LANGUAGE sql VOLATILE AS $$
    SELECT * FROM es.append(p_stream_id, p_expected_version, ARRAY[p_event_id], ARRAY[p_event_type],
                                  ARRAY[p_data], CASE WHEN p_metadata IS NULL THEN NULL ELSE ARRAY[p_metadata] END)
$$;
