{{- $s := .schema | default "es" -}}
-- es: the archive becomes a partitioned table (issue 15 §3): ranges of
-- transaction keys, created by archive_events as it fills them
-- (schema/code/archive.sql), whose oldest an operator can detach
-- (detach_archive_partition) to dump and drop it. events itself stays one
-- table: partitioning it was measured to cost appends 1.12-1.19x and stream
-- reads 1.47x (docs/benchmarks.md, "The archive (issue 13)"); the archive
-- is read, never appended to by users, so it can pay for partitions.
--
-- The archive is a prefix of the log (archive_events moves the oldest
-- events first): every archived key is at or below every key left in
-- events, and every key yet to be appended is above them. So the table as
-- it is becomes the first partition, named, as archive_events names the
-- partitions it creates, after the first key of its range: its smallest
-- key, up to just above its largest; archive_events adds the next ones.
-- An empty table is dropped (archive_events creates the first partition
-- when it first moves events).
--
-- A partitioned table can have no unique index without its partition key,
-- so (stream_id, version) and event_id are plain indexes from now on (the
-- parent's, built on the old table when it is attached). They are still
-- unique in fact: rows enter the archive only from events, where both are
-- unique, by archive_events, which moves each event once (under its lock
-- on events, SHARE ROW EXCLUSIVE, taken by every step); and the
-- immutability triggers (immutability.sql, on the parent and on every
-- partition) refuse every other change, and nobody but the owner has
-- INSERT.
--
-- The parent has the columns, defaults, generated columns and checks of
-- the table (whatever migrations added since 006: LIKE copies them from
-- the catalog), and its tablespace (an operator may have given the
-- archive one: new partitions go there too). Attaching checks every row
-- against the bound and builds the two plain indexes: it reads the
-- table, under this migration's lock (see the CHANGELOG's upgrading
-- notes).
SET LOCAL search_path = pg_catalog, pg_temp;

DO $partitioned$
DECLARE
    v_min   xid8;
    v_max   xid8;
    v_old   text;
    v_space text;
BEGIN
    SELECT min(a.transaction_id), max(a.transaction_id) INTO v_min, v_max FROM {{ $s }}.events_archive AS a;
    SELECT t.spcname INTO v_space
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_tablespace AS t ON t.oid = c.reltablespace
     WHERE c.oid = '{{ $s }}.events_archive'::pg_catalog.regclass;
    v_old := pg_catalog.format('events_archive_%s', coalesce(v_min, '0'));
    -- The single table, renamed, with its index names freed for the
    -- parent's.
    EXECUTE pg_catalog.format('ALTER TABLE {{ $s }}.events_archive RENAME TO %I', v_old);
    EXECUTE pg_catalog.format('ALTER TABLE {{ $s }}.%I RENAME CONSTRAINT events_archive_pkey TO %I', v_old, v_old || '_pkey');
    EXECUTE pg_catalog.format('ALTER INDEX {{ $s }}.events_archive_category_idx RENAME TO %I', v_old || '_category_idx');
    EXECUTE pg_catalog.format('ALTER TABLE {{ $s }}.%I DROP CONSTRAINT events_archive_stream_version_key, '
                              'DROP CONSTRAINT events_archive_event_id_key', v_old);
    EXECUTE pg_catalog.format('CREATE TABLE {{ $s }}.events_archive '
                              '(LIKE {{ $s }}.%I INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS) '
                              'PARTITION BY RANGE (transaction_id)%s',
                              v_old, CASE WHEN v_space IS NOT NULL THEN pg_catalog.format(' TABLESPACE %I', v_space) ELSE '' END);
    ALTER TABLE {{ $s }}.events_archive ADD CONSTRAINT events_archive_pkey PRIMARY KEY (transaction_id, global_position);
    CREATE INDEX events_archive_stream_version_idx ON {{ $s }}.events_archive (stream_id, version);
    CREATE INDEX events_archive_event_id_idx ON {{ $s }}.events_archive (event_id);
    CREATE INDEX events_archive_category_idx ON {{ $s }}.events_archive (category, transaction_id, global_position);
    IF v_max IS NULL THEN
        -- all_events (the code package's, installed again after the
        -- migrations) reads it: with an empty archive, events alone is the
        -- same (its columns are those of events, in their order).
        IF pg_catalog.to_regclass('{{ $s }}.all_events') IS NOT NULL THEN
            CREATE OR REPLACE VIEW {{ $s }}.all_events AS SELECT e.* FROM {{ $s }}.events AS e;
        END IF;
        EXECUTE pg_catalog.format('DROP TABLE {{ $s }}.%I', v_old);
    ELSE
        -- (008 added its check NOT VALID; a partition must hold its
        -- parent's checks valid.)
        EXECUTE pg_catalog.format('ALTER TABLE {{ $s }}.%I VALIDATE CONSTRAINT events_archive_schema_version_check', v_old);
        EXECUTE pg_catalog.format('ALTER TABLE {{ $s }}.events_archive ATTACH PARTITION {{ $s }}.%I FOR VALUES FROM (%L) TO (%L)',
                                  v_old, v_min, (v_max::text::numeric + 1)::text);
    END IF;
END
$partitioned$;

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

-- Back to one table, with the rows of every attached partition (a
-- detached one is not brought back: its events were removed from the log
-- when it was detached; the table stays where it is).
DO $single$
DECLARE
    v_space   text;
    v_columns text;
BEGIN
    SELECT t.spcname INTO v_space
      FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_tablespace AS t ON t.oid = c.reltablespace
     WHERE c.oid = '{{ $s }}.events_archive'::pg_catalog.regclass;
    EXECUTE pg_catalog.format('CREATE TABLE {{ $s }}.events_archive_single '
                              '(LIKE {{ $s }}.events_archive INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)%s',
                              CASE WHEN v_space IS NOT NULL THEN pg_catalog.format(' TABLESPACE %I', v_space) ELSE '' END);
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_columns
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = '{{ $s }}.events_archive'::pg_catalog.regclass AND a.attnum > 0
       AND NOT a.attisdropped AND a.attgenerated = '';
    EXECUTE pg_catalog.format('INSERT INTO {{ $s }}.events_archive_single (%1$s) SELECT %1$s FROM {{ $s }}.events_archive '
                              'ORDER BY transaction_id, global_position', v_columns);
    -- all_events (the code package's, installed again after this step)
    -- reads the partitioned table: make it read events alone meanwhile,
    -- so that what depends on it (events_view, a user's view) stays. Its
    -- columns are those of events, in their order.
    IF pg_catalog.to_regclass('{{ $s }}.all_events') IS NOT NULL THEN
        CREATE OR REPLACE VIEW {{ $s }}.all_events AS SELECT e.* FROM {{ $s }}.events AS e;
    END IF;
END
$single$;
DROP TABLE {{ $s }}.events_archive;
ALTER TABLE {{ $s }}.events_archive_single RENAME TO events_archive;
ALTER TABLE {{ $s }}.events_archive
    ADD CONSTRAINT events_archive_pkey PRIMARY KEY (transaction_id, global_position),
    ADD CONSTRAINT events_archive_stream_version_key UNIQUE (stream_id, version),
    ADD CONSTRAINT events_archive_event_id_key UNIQUE (event_id);
CREATE INDEX events_archive_category_idx ON {{ $s }}.events_archive (category, transaction_id, global_position);

-- Partitions detached from the archive (detach_archive_partition) stay,
-- with their rows, for the operator to dump and drop: they hold events
-- removed from the log. Their immutability triggers call the code
-- package's refuse_event_change, which migrating further down drops: the
-- triggers go now, and the tables are plain tables from here on.
DO $detached$
DECLARE
    v_table pg_catalog.regclass;
BEGIN
    FOR v_table IN
        SELECT c.oid::pg_catalog.regclass
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = '{{ $s }}'::pg_catalog.regnamespace AND c.relkind = 'r'
           AND c.relname ~ '^events_archive_[0-9]+$'
    LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS events_archive_immutable ON %s', v_table);
        EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS events_archive_no_truncate ON %s', v_table);
    END LOOP;
END
$detached$;
