{{- $s := .schema | default "es" -}}
-- es: snapshots.
--
-- SQLSTATEs raised (besides those of append):
--   PE003  invalid argument                       DETAIL: {"argument", ...}
--   PE008  snapshot version beyond the stream's   DETAIL: {"stream_id", "version", "stream_version"}
--
-- A snapshot is a cache of an aggregate's state at a version of its stream:
-- {{ $s }}.snapshots keeps the newest one per stream. Events stay the truth; a
-- snapshot only saves replaying the events up to its version. Loading a
-- stream from its snapshot is a read path: load, in read.sql.

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
    v_deleted_at     timestamptz;
    v_tombstoned_at  timestamptz;
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
    SELECT s.version, s.deleted_at, s.tombstoned_at INTO v_stream_version, v_deleted_at, v_tombstoned_at
      FROM {{ $s }}.streams AS s WHERE s.stream_id = p_stream_id;
    IF v_deleted_at IS NOT NULL THEN
        -- A deleted stream takes no snapshot, as it takes no append (a
        -- tombstone removed its snapshot for good).
        PERFORM {{ $s }}.raise_stream_deleted('save_snapshot', p_stream_id, v_tombstoned_at IS NOT NULL);
    END IF;
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
