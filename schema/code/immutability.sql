{{- $s := .schema | default "es" -}}
-- es: events are immutable.

-- Events are append-only: UPDATE and TRUNCATE are refused to everyone,
-- DELETE to everyone but the functions that remove events for good
-- (lifecycle.sql: tombstones and retention): they run as the table's
-- owner and set es.removing_events for their DELETE. Setting the flag
-- takes nothing (any session can), but only the owner (or a role with its
-- privileges: a member, a superuser) passes with it; a login that does
-- not own the table cannot DELETE from it at all.
CREATE OR REPLACE FUNCTION {{ $s }}.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('es.removing_events', true) = 'on'
       AND pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class AS c WHERE c.oid = TG_RELID), 'USAGE') THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'events are immutable: % on %.% is not allowed', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'PE005',
              HINT = 'append a compensating event instead; to delete a stream for good, see tombstone_stream';
END
$$;

CREATE OR REPLACE TRIGGER events_immutable
    BEFORE UPDATE OR DELETE ON {{ $s }}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {{ $s }}.refuse_event_change();

CREATE OR REPLACE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON {{ $s }}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {{ $s }}.refuse_event_change();

-- protect_archive_table gives a table of the archive (migration 006; with
-- migration 010, the partitioned parent and each of its partitions) the
-- triggers of events. Statement triggers: PostgreSQL fires them for the
-- table a statement names only, not for a partitioned table's partitions
-- (nor a partition's for its parent), so every partition has its own, and
-- a DELETE or UPDATE naming a partition is refused like one naming the
-- archive. archive_events calls it for each partition it creates. Owner
-- only.
CREATE OR REPLACE FUNCTION {{ $s }}.protect_archive_table(p_table regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('CREATE OR REPLACE TRIGGER events_archive_immutable BEFORE UPDATE OR DELETE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION {{ $s }}.refuse_event_change()', p_table);
    EXECUTE format('CREATE OR REPLACE TRIGGER events_archive_no_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION {{ $s }}.refuse_event_change()', p_table);
END
$$;

-- The archive is as immutable as events: the table, and its partitions.
DO $archive$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN
        SELECT c.oid::regclass
          FROM pg_catalog.pg_class AS c
         WHERE c.oid = pg_catalog.to_regclass('{{ $s }}.events_archive')
            OR c.oid IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits AS i
                          WHERE i.inhparent = pg_catalog.to_regclass('{{ $s }}.events_archive'))
    LOOP
        PERFORM {{ $s }}.protect_archive_table(v_table);
    END LOOP;
END
$archive$;
