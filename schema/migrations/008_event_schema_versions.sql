{{- $s := .schema | default "es" -}}
-- es: each event's schema version: the version of its type's shape it was
-- written in (es.Register with a version; 1 by default), so that one type
-- name can change its shape and readers upcast old versions to the current
-- one. See schema/code/append.sql (append stores it), read.sql and
-- views.sql (reads show it).

SET LOCAL search_path = pg_catalog, pg_temp;

-- A constant default: PostgreSQL records it in the catalog and does not
-- rewrite the table; every event stored before this migration reads as
-- version 1, and is never rewritten. The check is NOT VALID so that adding
-- it does not scan the table under this migration's exclusive lock: the
-- rows already stored hold the default, 1; every later row is checked.
ALTER TABLE {{ $s }}.events
    ADD COLUMN schema_version int NOT NULL DEFAULT 1,
    ADD CONSTRAINT events_schema_version_check CHECK (schema_version >= 1) NOT VALID;

-- The archive (migration 006) has the columns of events.
ALTER TABLE {{ $s }}.events_archive
    ADD COLUMN schema_version int NOT NULL DEFAULT 1,
    ADD CONSTRAINT events_archive_schema_version_check CHECK (schema_version >= 1) NOT VALID;

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

-- events_view shows the column. The code package, installed after this,
-- creates the view only on a table that has it (views.sql).
DROP VIEW IF EXISTS {{ $s }}.events_view;
-- all_events (archive.sql) reads the column: it is made again, without
-- it, when the code package is installed after this step.
DROP VIEW IF EXISTS {{ $s }}.all_events;
ALTER TABLE {{ $s }}.events DROP COLUMN schema_version;
ALTER TABLE {{ $s }}.events_archive DROP COLUMN schema_version;
