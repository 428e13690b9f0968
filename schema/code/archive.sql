{{- $s := .schema | default "es" -}}
-- es: the archive. archive_events moves old events from events to
-- events_archive (migration 006), which can live on cheaper storage; every
-- read of the log goes through all_events, both tables as one, so moving
-- an event changes nothing a reader sees: not read_all's order, not a
-- stream's versions, not a subscription.
--
-- Idempotency holds across the archive: once events were archived, append
-- looks every event id up in the archive too (an index probe, in its
-- INSERT). An archive step holds a lock on events that appends wait for
-- (SHARE ROW EXCLUSIVE): keep its steps small (p_max_events), as each
-- holds the appends back while it runs.

-- all_events: every event, live or archived. A plain view over a UNION
-- ALL: PostgreSQL pushes a query's conditions into both tables and merges
-- their index scans, so the read functions' plans stay index probes. Before
-- migration 006 (a partial installation) it reads events alone. Its
-- columns are those of events, whatever the migrations have added (each
-- adds it to events_archive too, as 008 does schema_version).
DO $all_events$
DECLARE
    v_columns text;
    v_archive text := '';
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_columns
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = '{{ $s }}.events'::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped;
    IF pg_catalog.to_regclass('{{ $s }}.events_archive') IS NOT NULL THEN
        v_archive := pg_catalog.format(' UNION ALL SELECT %s FROM {{ $s }}.events_archive', v_columns);
    END IF;
    EXECUTE pg_catalog.format('CREATE OR REPLACE VIEW {{ $s }}.all_events AS SELECT %s FROM {{ $s }}.events%s', v_columns, v_archive);
END
$all_events$;

COMMENT ON VIEW {{ $s }}.all_events IS
    'Every event, live (events) or archived (events_archive): what the read functions read.';

-- log_max_key returns the largest transaction key the log has ever used:
-- of its events, live or archived, and of the events removed from it
-- (transaction_key_base.removed_transaction_id). The key base must stay
-- above it (keys.sql), so
-- that no new event sorts before a checkpoint. append computes the same
-- inline (one statement, on every append).
CREATE OR REPLACE FUNCTION {{ $s }}.log_max_key() RETURNS xid8
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN greatest((SELECT max(e.transaction_id) FROM {{ $s }}.all_events AS e),
                    (SELECT b.removed_transaction_id FROM {{ $s }}.transaction_key_base AS b));
END
$$;

-- archive_events moves up to p_max_events events whose position is before
-- (p_before_transaction_id, p_before_position), oldest first, from events
-- to events_archive, and returns how many it moved; call it again, each
-- call in a transaction of its own, until it returns 0 (pgstore's
-- Store.ArchiveEvents does). It moves only events below the log's horizon
-- (committed, with nothing left to commit before them), never the log's
-- last event (events keeps the newest), and keeps the archive a prefix of
-- the log. Granted to {{ $s }}_admin only.
CREATE OR REPLACE FUNCTION {{ $s }}.archive_events(p_before_transaction_id xid8, p_before_position bigint,
                                                   p_max_events int DEFAULT 1000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_count   bigint;
    v_horizon xid8 := {{ $s }}.log_horizon();
    v_last    record;
    v_columns text;
BEGIN
    IF p_before_transaction_id IS NULL OR p_before_position IS NULL OR p_before_position < 0 THEN
        RAISE EXCEPTION 'archive_events: position %/% is invalid (want a transaction id and a non-negative global position)',
                coalesce(p_before_transaction_id::text, 'NULL'), coalesce(p_before_position::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "before"}';
    END IF;
    IF p_max_events IS NULL OR p_max_events < 1 THEN
        RAISE EXCEPTION 'archive_events: max_events must be at least 1, got %', coalesce(p_max_events::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "max_events"}';
    END IF;
    -- Appends wait while this step moves events (their INSERT looks the
    -- ids up in the archive once it has its lock: see append.sql), and
    -- know from the flag, committed with the step, to look.
    LOCK TABLE {{ $s }}.events IN SHARE ROW EXCLUSIVE MODE;
    UPDATE {{ $s }}.transaction_key_base AS b SET archived = true WHERE NOT b.archived;
    SELECT e.transaction_id, e.global_position INTO v_last
      FROM {{ $s }}.events AS e ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1;
    -- The columns to copy: those of events but the generated ones
    -- (category), whatever later migrations add (each adds it to the
    -- archive too).
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_columns
      FROM pg_catalog.pg_attribute AS a
     WHERE a.attrelid = '{{ $s }}.events'::pg_catalog.regclass AND a.attnum > 0
       AND NOT a.attisdropped AND a.attgenerated = '';
    PERFORM set_config('es.removing_events', 'on', true);
    -- Inserted in the log's order, so that the archive's rows lie in the
    -- order read_all reads them (its index scans then read each page once).
    EXECUTE format($move$
        WITH moving AS (
            SELECT e.transaction_id, e.global_position
              FROM {{ $s }}.events AS e
             WHERE (e.transaction_id, e.global_position) < ($1, $2)
               AND e.transaction_id < $3
               AND (e.transaction_id, e.global_position) < ($4, $5)
             ORDER BY e.transaction_id, e.global_position
             LIMIT $6
        ), moved AS (
            DELETE FROM {{ $s }}.events AS e
             USING moving AS m
             WHERE e.transaction_id = m.transaction_id AND e.global_position = m.global_position
            RETURNING e.*
        )
        INSERT INTO {{ $s }}.events_archive (%1$s)
        SELECT %1$s FROM moved ORDER BY transaction_id, global_position$move$, v_columns)
      USING p_before_transaction_id, p_before_position, v_horizon, v_last.transaction_id, v_last.global_position, p_max_events;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('es.removing_events', 'off', true);
    RETURN v_count;
END
$$;
