{{- $s := .schema | default "es" -}}
-- es: the archive. archive_events moves old events from events to
-- events_archive (migration 006), which can live on cheaper storage; every
-- read of the log goes through all_events, both tables as one, so moving
-- an event changes nothing a reader sees: not read_all's order, not a
-- stream's versions, not a subscription.
--
-- With migration 010 the archive is partitioned by ranges of transaction
-- keys (events itself is not: see the migration). archive_events creates
-- the partitions as it fills them, each for about p_partition_events
-- events; an operator lists them (archive_partitions) and detaches the
-- oldest (detach_archive_partition) to dump and drop it: its events leave
-- the log as retention's do. Before migration 010 the archive is one
-- table, and these functions work on it as before (the code package
-- installs on every schema version).
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

-- archive_bounds returns the partitions of the archive, oldest first: the
-- table, its name, and its range of transaction keys [from, to), as
-- archive_events created it (from the catalog: the partition bound is
-- the one record of it). Nothing before migration 010.
CREATE OR REPLACE FUNCTION {{ $s }}.archive_bounds()
RETURNS TABLE (partition regclass, partition_name text, from_transaction_id xid8, to_transaction_id xid8)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT c.oid::regclass, c.relname::text, b.bound[1]::xid8, b.bound[2]::xid8
      FROM pg_catalog.pg_inherits AS i
      JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
     CROSS JOIN LATERAL (SELECT regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
                                             '^FOR VALUES FROM \(''(\d+)''\) TO \(''(\d+)''\)$') AS bound) AS b
     WHERE i.inhparent = pg_catalog.to_regclass('{{ $s }}.events_archive')
     ORDER BY b.bound[1]::xid8;
END
$$;

-- archive_partitions lists the partitions of the archive for operators,
-- oldest first: name, range of transaction keys [from, to), the events it
-- holds (PostgreSQL's estimate, from the last ANALYZE or VACUUM; NULL
-- before the first), its size with indexes, and its tablespace (NULL: the
-- database's default). Only the oldest can be detached.
CREATE OR REPLACE FUNCTION {{ $s }}.archive_partitions()
RETURNS TABLE (partition_name text, from_transaction_id xid8, to_transaction_id xid8,
               estimated_events bigint, total_bytes bigint, tablespace text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT b.partition_name, b.from_transaction_id, b.to_transaction_id,
           CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END,
           pg_catalog.pg_total_relation_size(b.partition),
           t.spcname::text
      FROM {{ $s }}.archive_bounds() AS b
      JOIN pg_catalog.pg_class AS c ON c.oid = b.partition
      LEFT JOIN pg_catalog.pg_tablespace AS t ON t.oid = c.reltablespace
     ORDER BY b.from_transaction_id;
END
$$;

-- cover_archive creates the partitions the archive needs for an event of
-- key p_key, each after the newest, until one covers it. A partition
-- starts where the newest ends (the first: at the first key in events)
-- and ends at the key of the event p_size events further in events (the
-- log's order), so that it holds about p_size events; when fewer remain,
-- further by as many keys as the events there spread over, times p_size
-- over their number (keys advance with the cluster's transactions, not
-- with the log's events: the estimate holds while the rate does). Ranges
-- never overlap, and a partition's range never changes once created.
-- The partition is created on its own and then attached, which locks the
-- archive in SHARE UPDATE EXCLUSIVE mode only (readers and appends go on;
-- CREATE TABLE ... PARTITION OF would lock them out, and an append, which
-- reads the archive before it inserts into events, would deadlock with
-- the archive step that holds events), in the archive's tablespace, with
-- the archive's triggers. Owner only (archive_events).
CREATE OR REPLACE FUNCTION {{ $s }}.cover_archive(p_key xid8, p_size bigint) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_from  xid8;
    v_count bigint;
    v_last  xid8;
    v_to    numeric;
    v_name  text;
    v_space text;
BEGIN
    IF p_key IS NULL OR p_size IS NULL OR p_size < 1 THEN
        RETURN;
    END IF;
    LOOP
        SELECT max(b.to_transaction_id) INTO v_from FROM {{ $s }}.archive_bounds() AS b;
        EXIT WHEN p_key < v_from;
        IF v_from IS NULL THEN
            SELECT e.transaction_id INTO v_from
              FROM {{ $s }}.events AS e ORDER BY e.transaction_id, e.global_position LIMIT 1;
        END IF;
        SELECT count(*), max(n.transaction_id) INTO v_count, v_last
          FROM (SELECT e.transaction_id FROM {{ $s }}.events AS e
                 WHERE e.transaction_id >= v_from
                 ORDER BY e.transaction_id, e.global_position
                 LIMIT p_size + 1) AS n;
        IF v_count > p_size THEN
            v_to := greatest(v_last::text::numeric, v_from::text::numeric + 1);
        ELSE
            v_to := v_from::text::numeric
                    + ceil((v_last::text::numeric - v_from::text::numeric + 1) * p_size / v_count);
        END IF;
        v_to := least(v_to, 18446744073709551615);
        v_name := format('events_archive_%s', v_from);
        SELECT t.spcname INTO v_space
          FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_tablespace AS t ON t.oid = c.reltablespace
         WHERE c.oid = '{{ $s }}.events_archive'::regclass;
        EXECUTE format('CREATE TABLE {{ $s }}.%I (LIKE {{ $s }}.events_archive INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)%s',
                       v_name, CASE WHEN v_space IS NOT NULL THEN format(' TABLESPACE %I', v_space) ELSE '' END);
        EXECUTE format('ALTER TABLE {{ $s }}.events_archive ATTACH PARTITION {{ $s }}.%I FOR VALUES FROM (%L) TO (%L)',
                       v_name, v_from, v_to::text);
        PERFORM {{ $s }}.protect_archive_table(format('{{ $s }}.%I', v_name)::regclass);
    END LOOP;
END
$$;

-- archive_events moves up to p_max_events events whose position is before
-- (p_before_transaction_id, p_before_position), oldest first, from events
-- to events_archive, and returns how many it moved; call it again, each
-- call in a transaction of its own, until it returns 0 (pgstore's
-- Store.ArchiveEvents does). It moves only events below the log's horizon
-- (committed, with nothing left to commit before them), never the log's
-- last event (events keeps the newest), and keeps the archive a prefix of
-- the log. The archive partitioned (migration 010), it first creates the
-- partitions the events need, of about p_partition_events events each
-- (cover_archive; the size of those created later is that of the call
-- that creates them). Granted to {{ $s }}_admin only.
CREATE OR REPLACE FUNCTION {{ $s }}.archive_events(p_before_transaction_id xid8, p_before_position bigint,
                                                   p_max_events int DEFAULT 1000,
                                                   p_partition_events bigint DEFAULT 1000000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_count   bigint;
    v_horizon xid8 := {{ $s }}.log_horizon();
    v_last    record;
    v_columns text;
    v_key     xid8;
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
    IF p_partition_events IS NULL OR p_partition_events < 1 OR p_partition_events > 1000000000 THEN
        RAISE EXCEPTION 'archive_events: partition_events must be between 1 and 1000000000, got %',
                coalesce(p_partition_events::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "partition_events"}';
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
    -- The events to move, as the move below finds them (under the lock,
    -- events changes only by this step).
    SELECT max(m.transaction_id) INTO v_key
      FROM (SELECT e.transaction_id
              FROM {{ $s }}.events AS e
             WHERE (e.transaction_id, e.global_position) < (p_before_transaction_id, p_before_position)
               AND e.transaction_id < v_horizon
               AND (e.transaction_id, e.global_position) < (v_last.transaction_id, v_last.global_position)
             ORDER BY e.transaction_id, e.global_position
             LIMIT p_max_events) AS m;
    IF v_key IS NULL THEN
        RETURN 0;
    END IF;
    IF (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = '{{ $s }}.events_archive'::pg_catalog.regclass) = 'p' THEN
        PERFORM {{ $s }}.cover_archive(v_key, p_partition_events);
    END IF;
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

-- detach_archive_partition detaches the oldest partition of the archive,
-- p_partition (its name, as archive_partitions lists it): its events
-- leave the log, as retention removes events, and the table stays in the
-- schema, a plain table (owned by the schema's owner, with no grant to
-- anyone else, and still immutable) for the operator to pg_dump and DROP.
-- It returns the number of events detached. What it keeps, as removal
-- does (lifecycle.sql):
--   - the log: no other event moves; transaction_key_base records the
--     partition's last position as removed (note_removed), so that new
--     keys stay above it and a checkpoint at or before it stays valid;
--   - streams: every stream with events in it is truncated past them
--     (truncate_before and removed_before, as apply_retention leaves a
--     stream), so that reads by stream start after them and a load
--     without a snapshot there reports the stream truncated, never a
--     partial state;
--   - parked events of its events are resolved as 'removed';
--   - idempotency: the ids of its events are forgotten with them (an
--     append that retries one is a new append), as retention's are.
-- Refused (PE013, DETAIL {"partition", "reason", ...}): with reason
-- 'subscriptions', when a subscription's checkpoint is before the
-- partition's last event (it has not read all of it; DETAIL lists up to
-- ten), unless p_force; with reason 'incomplete' (p_force or not), when
-- events of its range are still in events (archive them first) or could
-- still be appended (its range reaches the log's horizon). Any other
-- partition than the oldest, or none: PE003. It locks the archive
-- exclusively (reads and appends wait) while it updates the streams and
-- detaches: on a partition of a million events, a second or so. Granted
-- to {{ $s }}_admin only.
CREATE OR REPLACE FUNCTION {{ $s }}.detach_archive_partition(p_partition text, p_force boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_oldest record;
    v_last   record;
    v_lagging text[];
    v_count  bigint;
    v_role   text;
BEGIN
    IF p_partition IS NULL OR p_partition = '' OR p_force IS NULL THEN
        RAISE EXCEPTION 'detach_archive_partition: want a partition name and force true or false, got % and %',
                coalesce(quote_literal(left(p_partition, 100)), 'NULL'), coalesce(p_force::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "partition"}';
    END IF;
    IF (SELECT c.relkind FROM pg_catalog.pg_class AS c
         WHERE c.oid = pg_catalog.to_regclass('{{ $s }}.events_archive')) IS DISTINCT FROM 'p' THEN
        RAISE EXCEPTION 'detach_archive_partition: the archive of schema {{ $s }} is not partitioned (migration 010)'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "partition"}';
    END IF;
    -- First of all: nothing reads or writes the archive until this
    -- commits (no lock to upgrade later, so no deadlock with a reader).
    LOCK TABLE {{ $s }}.events_archive IN ACCESS EXCLUSIVE MODE;
    SELECT * INTO v_oldest FROM {{ $s }}.archive_bounds() AS b ORDER BY b.from_transaction_id LIMIT 1;
    IF v_oldest.partition_name IS DISTINCT FROM p_partition THEN
        RAISE EXCEPTION 'detach_archive_partition: % is not the archive''s oldest partition (%): only the oldest can be detached',
                quote_literal(left(p_partition, 100)), coalesce(v_oldest.partition_name, 'there is none')
            USING ERRCODE = 'PE003',
                  DETAIL = json_build_object('argument', 'partition', 'oldest', v_oldest.partition_name)::text;
    END IF;
    -- Complete: no event of its range is left in events, nor can one be
    -- appended (every key below the horizon is taken by a finished
    -- transaction; new keys are at or above it).
    IF v_oldest.to_transaction_id > {{ $s }}.log_horizon()
       OR EXISTS (SELECT FROM {{ $s }}.events AS e WHERE e.transaction_id < v_oldest.to_transaction_id) THEN
        RAISE EXCEPTION 'detach_archive_partition: partition % is not complete: archive the events before transaction key % first',
                p_partition, v_oldest.to_transaction_id
            USING ERRCODE = 'PE013',
                  DETAIL = json_build_object('partition', p_partition, 'reason', 'incomplete',
                                             'to_transaction_id', v_oldest.to_transaction_id::text)::text;
    END IF;
    EXECUTE format('SELECT a.transaction_id, a.global_position FROM %s AS a
                     ORDER BY a.transaction_id DESC, a.global_position DESC LIMIT 1', v_oldest.partition)
       INTO v_last;
    IF v_last.transaction_id IS NOT NULL THEN
        SELECT array_agg(c.subscription_id ORDER BY c.subscription_id) INTO v_lagging
          FROM (SELECT c.subscription_id FROM {{ $s }}.checkpoints AS c
                 WHERE (c.transaction_id, c.global_position) < (v_last.transaction_id, v_last.global_position)
                 ORDER BY c.subscription_id LIMIT 10) AS c;
        IF v_lagging IS NOT NULL AND NOT p_force THEN
            RAISE EXCEPTION 'detach_archive_partition: subscriptions have not read partition % yet: %',
                    p_partition, array_to_string(v_lagging, ', ')
                USING ERRCODE = 'PE013',
                      DETAIL = json_build_object('partition', p_partition, 'reason', 'subscriptions',
                                                 'subscriptions', v_lagging)::text,
                      HINT = 'wait for them, or detach with force: they then never see its events';
        END IF;
    END IF;
    -- The streams whose first events leave: reads by stream start after
    -- them, as after retention (a stream's events in the partition are a
    -- prefix of it: every event of a smaller key is archived, and older
    -- partitions are detached).
    EXECUTE format($streams$
        WITH gone AS (
            SELECT a.stream_id, max(a.version) + 1 AS next, count(*) AS n FROM %s AS a GROUP BY a.stream_id
        ), done AS (
            UPDATE {{ $s }}.streams AS s
               SET truncate_before = greatest(coalesce(s.truncate_before, 1), g.next),
                   removed_before = greatest(coalesce(s.removed_before, 1), g.next)
              FROM gone AS g
             WHERE s.stream_id = g.stream_id
            RETURNING g.n
        )
        SELECT coalesce(sum(d.n), 0) FROM done AS d$streams$, v_oldest.partition)
       INTO v_count;
    EXECUTE format('ALTER TABLE {{ $s }}.events_archive DETACH PARTITION %s', v_oldest.partition);
    IF v_last.transaction_id IS NOT NULL THEN
        PERFORM {{ $s }}.note_removed(NULL, v_last.transaction_id, v_last.global_position);
    END IF;
    -- The table is the owner's alone now: every privilege anyone else
    -- holds on it is revoked, es's roles' and any other (a grant that the
    -- owner's default privileges gave the partition when it was created).
    FOR v_role IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END
          FROM pg_catalog.pg_class AS c
               CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) AS a
               LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.grantee
         WHERE c.oid = v_oldest.partition::pg_catalog.regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %s', v_oldest.partition, v_role);
    END LOOP;
    EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', v_oldest.partition);
    RETURN v_count;
END
$$;
