{{- $s := .schema | default "es" -}}
-- es: views for reading events in SQL.
--
-- Both views are plain (not security_barrier, not materialized): PostgreSQL
-- merges them into the calling query, so a filter on a plain column
-- (stream_id, category, event_type, event_id, version, transaction_id,
-- global_position, recorded_at) is applied to the events table directly
-- and uses its indexes, and a column the query does not name is never
-- computed. data, metadata, correlation_id and causation_id each call
-- try_msgpack_to_jsonb; the planner evaluates them only for the rows that
-- pass the filters on plain columns (and, with ORDER BY ... LIMIT, only for
-- the rows returned), once per column named.

-- events_view shows every column of events, with data and metadata decoded
-- to jsonb. It decodes with try_msgpack_to_jsonb, not msgpack_to_jsonb, so
-- that one malformed event does not make a query over many fail: its data
-- (or metadata) reads as SQL NULL, while a msgpack nil reads as the jsonb
-- null, so data IS NULL finds the malformed rows (data_msgpack keeps the
-- stored bytes). correlation_id and causation_id are the metadata keys the
-- Go codec writes (text: usually a UUID in canonical form, but the codec
-- does not require one), schema_version the version of the event type's
-- shape the data was written in.
--
-- The view is created only on an events table that has schema_version
-- (migration 008): the package is also installed after earlier migration
-- steps, and a view cannot name a column that is not there. A new column
-- goes last: CREATE OR REPLACE VIEW can only add columns at the end, and
-- replacing keeps the views and grants that depend on this one.
DO $events_view$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                WHERE a.attrelid = '{{ $s }}.events'::pg_catalog.regclass
                  AND a.attname = 'schema_version' AND NOT a.attisdropped) THEN
        CREATE OR REPLACE VIEW {{ $s }}.events_view AS
        SELECT e.global_position,
               e.transaction_id,
               e.transaction_id::text || '/' || e.global_position::text AS position,
               e.stream_id,
               e.category,
               e.version,
               e.event_id,
               e.event_type,
               {{ $s }}.try_msgpack_to_jsonb(e.data) AS data,
               {{ $s }}.try_msgpack_to_jsonb(e.metadata) AS metadata,
               {{ $s }}.try_msgpack_to_jsonb(e.metadata) ->> 'correlation_id' AS correlation_id,
               {{ $s }}.try_msgpack_to_jsonb(e.metadata) ->> 'causation_id' AS causation_id,
               e.recorded_at,
               e.data AS data_msgpack,
               e.metadata AS metadata_msgpack,
               e.schema_version
          FROM {{ $s }}.all_events AS e;

        COMMENT ON VIEW {{ $s }}.events_view IS
            'Events with data and metadata decoded from msgpack to jsonb (NULL when malformed).';
        COMMENT ON COLUMN {{ $s }}.events_view.position IS
            'The event''s place in the global log, as the Go es.Position prints it: transaction_id/global_position.';
        COMMENT ON COLUMN {{ $s }}.events_view.data IS
            'The event data as jsonb (try_msgpack_to_jsonb: NULL when the msgpack is malformed).';
        COMMENT ON COLUMN {{ $s }}.events_view.metadata IS
            'The metadata as jsonb: NULL when the event has none or it is malformed.';
        COMMENT ON COLUMN {{ $s }}.events_view.correlation_id IS
            'metadata->>''correlation_id''';
        COMMENT ON COLUMN {{ $s }}.events_view.causation_id IS
            'metadata->>''causation_id''';
        COMMENT ON COLUMN {{ $s }}.events_view.data_msgpack IS
            'The stored data bytes (msgpack).';
        COMMENT ON COLUMN {{ $s }}.events_view.metadata_msgpack IS
            'The stored metadata bytes (msgpack), or NULL.';
        COMMENT ON COLUMN {{ $s }}.events_view.schema_version IS
            'The schema version of the event''s type its data was written in (1 unless its writer registered another).';
    END IF;
END
$events_view$;

-- streams_view shows one row per stream: its version (= its number of
-- events), its category, when it was created and last appended to, and its
-- newest snapshot's version and schema version when it has one (the join
-- costs nothing when those columns are not named: the planner removes it).
CREATE OR REPLACE VIEW {{ $s }}.streams_view AS
SELECT s.stream_id,
       split_part(s.stream_id, '-', 1) AS category,
       s.version,
       s.version AS event_count,
       s.created_at,
       s.updated_at,
       s.transaction_id,
       sn.version AS snapshot_version,
       sn.schema_version AS snapshot_schema_version,
       sn.created_at AS snapshot_created_at
  FROM {{ $s }}.streams AS s
  LEFT JOIN {{ $s }}.snapshots AS sn ON sn.stream_id = s.stream_id;

COMMENT ON VIEW {{ $s }}.streams_view IS
    'One row per stream: version (= number of events), category, creation and last append times, newest snapshot.';
COMMENT ON COLUMN {{ $s }}.streams_view.updated_at IS
    'When the stream was last appended to.';
COMMENT ON COLUMN {{ $s }}.streams_view.snapshot_version IS
    'The version of the stream''s newest snapshot, NULL when it has none.';
