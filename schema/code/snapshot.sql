{{- $s := .schema | default "es" -}}
-- es: snapshots.
--
-- SQLSTATEs raised (besides those of append):
--   PE003  invalid argument                       DETAIL: {"argument", ...}
--   PE008  snapshot version beyond the stream's   DETAIL: {"stream_id", "version", "stream_version"}
--
-- A snapshot is a cache of an aggregate's state at a version of its stream:
-- {{ $s }}.snapshots keeps the newest one per stream. Events stay the truth; a
-- snapshot only saves replaying the events up to its version.

-- save_snapshot stores the state of the stream's aggregate at version
-- p_version, encoded by the client in the shape p_schema_version names. It
-- keeps only the newest snapshot per stream: it returns true when it stored
-- this one, false when the stream already has a snapshot at a higher
-- version (or at the same version with the same or a higher schema
-- version), which it keeps. A version beyond the stream's version is refused
-- (PE008): a snapshot can never be ahead of its stream.
CREATE OR REPLACE FUNCTION {{ $s }}.save_snapshot(
    p_stream_id      text,
    p_version        bigint,
    p_schema_version int,
    p_state          bytea
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_stream_version bigint;
BEGIN
    IF p_stream_id IS NULL OR p_stream_id = '' OR octet_length(p_stream_id) > 1000 THEN
        RAISE EXCEPTION 'save_snapshot: stream id must be 1 to 1000 bytes'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "stream_id"}';
    END IF;
    IF p_version IS NULL OR p_version < 1 THEN
        RAISE EXCEPTION 'save_snapshot: version must be 1 or more, got %', coalesce(p_version::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = json_build_object('argument', 'version', 'value', p_version)::text;
    END IF;
    IF p_schema_version IS NULL THEN
        RAISE EXCEPTION 'save_snapshot: schema version must not be null'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "schema_version"}';
    END IF;
    IF p_state IS NULL THEN
        RAISE EXCEPTION 'save_snapshot: state must not be null (use an empty bytea)'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "state"}';
    END IF;

    -- A stream's version never decreases, so a snapshot at or below the
    -- version seen here stays at or below it.
    SELECT s.version INTO v_stream_version FROM {{ $s }}.streams AS s WHERE s.stream_id = p_stream_id;
    v_stream_version := coalesce(v_stream_version, 0);
    IF p_version > v_stream_version THEN
        RAISE EXCEPTION 'save_snapshot: version % is beyond the version % of stream %', p_version, v_stream_version, p_stream_id
            USING ERRCODE = 'PE008',
                  DETAIL = json_build_object('stream_id', p_stream_id, 'version', p_version,
                                             'stream_version', v_stream_version)::text;
    END IF;

    RETURN {{ $s }}.store_snapshot(p_stream_id, p_version, p_schema_version, p_state);
END
$$;

-- store_snapshot stores a snapshot unless the stream has a newer one (a
-- higher version, or the same version with the same or a higher schema
-- version), and returns whether it stored it. It checks nothing: its
-- callers, save_snapshot and append with a snapshot, have.
CREATE OR REPLACE FUNCTION {{ $s }}.store_snapshot(
    p_stream_id      text,
    p_version        bigint,
    p_schema_version int,
    p_state          bytea
) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO {{ $s }}.snapshots AS s (stream_id, version, schema_version, state)
    VALUES (p_stream_id, p_version, p_schema_version, p_state)
    ON CONFLICT (stream_id) DO UPDATE
       SET version = excluded.version, schema_version = excluded.schema_version,
           state = excluded.state, created_at = excluded.created_at
     WHERE (s.version, s.schema_version) < (excluded.version, excluded.schema_version);
    RETURN FOUND;
END
$$;

-- load returns, in one query, what rebuilding the stream's aggregate needs:
-- the stream's snapshot when its schema version is p_snapshot_schema_version,
-- then the events after it in version order; without such a snapshot (none,
-- another schema version, or p_snapshot_schema_version NULL), every event.
--
-- The snapshot row comes first: its snapshot_state is not NULL, version is
-- the snapshot's version, recorded_at its creation time, and the event
-- columns are NULL. Event rows have snapshot_schema_version and
-- snapshot_state NULL. A stream with no events returns no rows. The
-- function is plain SQL, so PostgreSQL inlines it into the calling query:
-- the union below is planned as a merge of two index scans (the one
-- snapshot row, the events after it in version order), rows stream, and a
-- LIMIT on the call limits the scan. Both parts read one MVCC snapshot, so
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
    snapshot_state          bytea
)
LANGUAGE sql STABLE AS $$
    SELECT u.global_position, u.transaction_id, u.stream_id, u.version, u.event_id, u.event_type, u.data, u.metadata,
           u.recorded_at, u.snapshot_schema_version, u.snapshot_state
      FROM (SELECT NULL::pg_catalog.int8 AS global_position, NULL::pg_catalog.xid8 AS transaction_id, s.stream_id, s.version,
                   NULL::pg_catalog.uuid AS event_id, NULL::pg_catalog.text AS event_type, NULL::pg_catalog.bytea AS data,
                   NULL::pg_catalog.bytea AS metadata, s.created_at AS recorded_at,
                   s.schema_version AS snapshot_schema_version, s.state AS snapshot_state
              FROM {{ $s }}.snapshots AS s
            UNION ALL
            SELECT e.global_position, e.transaction_id, e.stream_id, e.version, e.event_id, e.event_type, e.data,
                   e.metadata, e.recorded_at, NULL::pg_catalog.int4, NULL::pg_catalog.bytea
              FROM {{ $s }}.events AS e) AS u
     WHERE u.stream_id OPERATOR(pg_catalog.=) p_stream_id
       AND CASE WHEN u.snapshot_state IS NOT NULL
                THEN u.snapshot_schema_version OPERATOR(pg_catalog.=) p_snapshot_schema_version
                ELSE u.version OPERATOR(pg_catalog.>) COALESCE((SELECT s.version FROM {{ $s }}.snapshots AS s
                                                                 WHERE s.stream_id OPERATOR(pg_catalog.=) p_stream_id
                                                                   AND s.schema_version OPERATOR(pg_catalog.=) p_snapshot_schema_version),
                                                                0::pg_catalog.int8) END
       AND CASE WHEN COALESCE(p_stream_id, ''::pg_catalog.text) OPERATOR(pg_catalog.=) ''::pg_catalog.text
                THEN {{ $s }}.invalid_argument('load', 'stream_id', 'must not be null or empty',
                                               pg_catalog.octet_length(p_stream_id)) OPERATOR(pg_catalog.=) 0::pg_catalog.int8
                ELSE true END
     ORDER BY u.version
$$;
