{{- $s := .schema | default "es" -}}
-- es: events are immutable.

-- Events are append-only: UPDATE, DELETE and TRUNCATE are refused.
CREATE OR REPLACE FUNCTION {{ $s }}.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % on %.% is not allowed', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'PE005',
              HINT = 'append a compensating event instead';
END
$$;

CREATE OR REPLACE TRIGGER events_immutable
    BEFORE UPDATE OR DELETE ON {{ $s }}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {{ $s }}.refuse_event_change();

CREATE OR REPLACE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON {{ $s }}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {{ $s }}.refuse_event_change();
