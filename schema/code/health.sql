{{- $s := .schema | default "es" -}}
-- es: the health of subscriptions, for operators: how far each is, how far
-- behind the head of the log, what its active instance reports, and what
-- holds the global log's horizon back.
--
-- SQLSTATE raised: PE003 for a NULL or empty subscription id, or an
-- unknown state.

-- report_status records what the active instance of a subscription (the
-- holder of its lease) reports: state 'running', 'retrying' (its handler
-- failed on an event and will be retried: p_error says why), 'failed' (its
-- handler's retries are used up: the instance stopped) or 'stopped', and
-- the filters it reads with, and while it catches up, the events per
-- second it handles (p_rate; NULL otherwise). It returns false, and
-- records nothing, when p_holder does not hold the lease.
CREATE OR REPLACE FUNCTION {{ $s }}.report_status(
    p_subscription_id text,
    p_holder          text,
    p_state           text,
    p_error           text,
    p_categories      text[],
    p_event_types     text[],
    p_rate            double precision
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_lease_arguments('report_status', p_subscription_id, p_holder, NULL);
    IF p_state IS NULL OR p_state NOT IN ('running', 'retrying', 'failed', 'stopped') THEN
        RAISE EXCEPTION 'report_status: unknown state %', coalesce(p_state, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "state"}';
    END IF;
    IF NOT {{ $s }}.holds_lease(p_subscription_id, p_holder) THEN
        RETURN false;
    END IF;
    INSERT INTO {{ $s }}.subscription_status AS s (subscription_id, state, last_error, categories, event_types, rate)
    VALUES (p_subscription_id, p_state, left(p_error, 10000), p_categories, p_event_types, p_rate)
    ON CONFLICT ON CONSTRAINT subscription_status_pkey DO UPDATE
       SET state = excluded.state,
           state_since = CASE WHEN s.state = excluded.state THEN s.state_since ELSE now() END,
           last_error = excluded.last_error, categories = excluded.categories,
           event_types = excluded.event_types, rate = excluded.rate, updated_at = now();
    RETURN true;
END
$$;

-- report_replica records where the active instance of a subscription
-- reads the log from (p_reads_from: 'primary', or the standby it reads,
-- as host:port) and, on a standby, how far its replay is behind the
-- primary's log (p_lag: how long ago the oldest event the primary shows
-- and the standby does not was recorded; zero when it shows everything;
-- NULL on the primary). It returns false, and records nothing, when
-- p_holder does not hold the lease. Migration 009 adds the columns.
CREATE OR REPLACE FUNCTION {{ $s }}.report_replica(
    p_subscription_id text,
    p_holder          text,
    p_reads_from      text,
    p_lag             interval
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_lease_arguments('report_replica', p_subscription_id, p_holder, NULL);
    IF coalesce(p_reads_from, '') = '' OR length(p_reads_from) > 300 THEN
        RAISE EXCEPTION 'report_replica: reads_from must be 1 to 300 characters'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "reads_from"}';
    END IF;
    IF p_lag < interval '0' THEN
        RAISE EXCEPTION 'report_replica: lag must not be negative, got %', p_lag
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "lag"}';
    END IF;
    IF NOT {{ $s }}.holds_lease(p_subscription_id, p_holder) THEN
        RETURN false;
    END IF;
    UPDATE {{ $s }}.subscription_status AS s
       SET reads_from = p_reads_from, replica_lag = p_lag
     WHERE s.subscription_id = p_subscription_id;
    RETURN true;
END
$$;

-- subscription_health describes one subscription:
--   health: 'failing' (its handler is failing: retrying, or stopped after
--     its retries; last_error says why), 'idle' (no instance runs),
--     'live' (it has handled every event it can read), 'catching up'
--     (events are waiting and its checkpoint moved within p_stall), or
--     'stalled' (events are waiting and it has not moved for p_stall);
--   its checkpoint, and when it last moved (last_progress_at);
--   events_behind: the events after its checkpoint that its filters keep
--     (and, for a consumer group's partition, that are in its partition),
--     of which hidden_events cannot be read yet (committed behind an older
--     running transaction: see horizon_holders), and the time the oldest
--     of them was recorded, and how long ago (seconds_behind);
--   parked_events: its unresolved parked events (parked.sql);
--   while it catches up, the rate its instance last reported (events per
--   second) and the time the events behind would take at that rate (eta);
--   what its active instance last reported, and the lease it holds;
--   while an instance runs, where it reads the log from ('primary', or a
--   standby's host:port) and that standby's replay lag (report_replica;
--   NULL on the primary). A subscription reading a lagging standby has
--   events behind it that it cannot read yet: it is 'catching up', or
--   'stalled' once the lag passes p_stall; replica_lag says why.
CREATE OR REPLACE FUNCTION {{ $s }}.subscription_health(p_subscription_id text, p_stall interval DEFAULT interval '1 minute')
RETURNS TABLE (
    subscription_id     text,
    health              text,
    transaction_id      xid8,
    global_position     bigint,
    checkpoint_exists   boolean,
    last_progress_at    timestamptz,
    events_behind       bigint,
    hidden_events       bigint,
    oldest_unhandled_at timestamptz,
    seconds_behind      double precision,
    rate                double precision,
    eta                 interval,
    parked_events       bigint,
    reported_state      text,
    reported_at         timestamptz,
    last_error          text,
    categories          text[],
    event_types         text[],
    holder_pid          int,
    lease_expires_at    timestamptz,
    reads_from          text,
    replica_lag         interval
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_checkpoint record;
    v_status     record;
    v_lease      record;
    v_partition  record;
    v_live       boolean;
    v_tx         xid8;
    v_pos        bigint;
BEGIN
    IF coalesce(p_subscription_id, '') = '' THEN
        RAISE EXCEPTION 'subscription_health: subscription id must not be null or empty'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "subscription_id"}';
    END IF;
    SELECT c.transaction_id, c.global_position, c.updated_at INTO v_checkpoint
      FROM {{ $s }}.checkpoints AS c WHERE c.subscription_id = p_subscription_id;
    checkpoint_exists := FOUND;
    -- The whole row: reads_from and replica_lag are read through jsonb
    -- below, so that this function works on a schema migrated down below
    -- 009 too.
    SELECT s.* INTO v_status
      FROM {{ $s }}.subscription_status AS s WHERE s.subscription_id = p_subscription_id;
    SELECT l.holder_pid, l.expires_at, l.acquired_at INTO v_lease
      FROM {{ $s }}.subscription_leases AS l WHERE l.subscription_id = p_subscription_id;
    v_live := FOUND AND {{ $s }}.lease_live(v_lease.expires_at, v_lease.holder_pid);
    SELECT p.partition, p.partitions INTO v_partition
      FROM {{ $s }}.subscription_partitions AS p WHERE p.subscription_id = p_subscription_id;

    v_tx := coalesce(v_checkpoint.transaction_id, '0');
    v_pos := coalesce(v_checkpoint.global_position, 0);
    subscription_id := p_subscription_id;
    transaction_id := v_tx;
    global_position := v_pos;
    last_progress_at := v_checkpoint.updated_at;
    reported_state := v_status.state;
    reported_at := v_status.state_since;
    last_error := v_status.last_error;
    categories := v_status.categories;
    event_types := v_status.event_types;
    IF v_live THEN
        holder_pid := v_lease.holder_pid;
        lease_expires_at := v_lease.expires_at;
        reads_from := to_jsonb(v_status) ->> 'reads_from';
        replica_lag := (to_jsonb(v_status) ->> 'replica_lag')::interval;
    END IF;

    SELECT b.events, b.hidden, b.oldest_recorded_at INTO events_behind, hidden_events, oldest_unhandled_at
      FROM {{ $s }}.log_behind(v_tx, v_pos, v_status.categories, v_status.event_types,
                                v_partition.partition, v_partition.partitions) AS b;
    seconds_behind := coalesce(extract(epoch FROM clock_timestamp() - oldest_unhandled_at)::double precision, 0);
    SELECT count(*) INTO parked_events FROM {{ $s }}.parked_events AS p
     WHERE p.subscription_id = p_subscription_id AND p.resolved_at IS NULL;
    IF v_live AND v_status.state = 'running' AND v_status.rate > 0 THEN
        rate := v_status.rate;
        eta := make_interval(secs => events_behind / v_status.rate);
    END IF;

    health := CASE
        WHEN v_status.state IN ('retrying', 'failed') THEN 'failing'
        WHEN NOT v_live THEN 'idle'
        WHEN events_behind = hidden_events THEN 'live'
        WHEN greatest(v_checkpoint.updated_at, v_lease.acquired_at) >= clock_timestamp() - p_stall THEN 'catching up'
        ELSE 'stalled'
    END;
    RETURN NEXT;
END
$$;

-- subscription_ids lists the subscriptions that have a checkpoint, a
-- reported status or a lease. (A function, so that the view below depends
-- on no table: migrating down drops tables without touching the view.)
CREATE OR REPLACE FUNCTION {{ $s }}.subscription_ids() RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT c.subscription_id FROM {{ $s }}.checkpoints AS c
    UNION SELECT s.subscription_id FROM {{ $s }}.subscription_status AS s
    UNION SELECT l.subscription_id FROM {{ $s }}.subscription_leases AS l
    ORDER BY 1;
END
$$;

-- subscriptions_view: the health of every subscription that has a
-- checkpoint, a reported status or a lease (see subscription_health).
CREATE OR REPLACE VIEW {{ $s }}.subscriptions_view AS
SELECT h.*
  FROM {{ $s }}.subscription_ids() AS n(subscription_id),
       LATERAL {{ $s }}.subscription_health(n.subscription_id) AS h;

-- horizon_holders lists the running transactions that hold the global
-- log's horizon back, oldest first: every transaction that has written
-- (holds a transaction id), in any database of the cluster, and prepared
-- transactions. read_all returns no event committed after the oldest of
-- them began writing until it ends, so a subscription that is 'live' with
-- hidden events, or that looks stalled, waits on the first row. It runs
-- with the caller's privileges: a caller without pg_read_all_stats (or
-- superuser) sees the query and times of its own sessions only.
CREATE OR REPLACE FUNCTION {{ $s }}.horizon_holders()
RETURNS TABLE (
    pid              int,
    database         name,
    usename          name,
    application_name text,
    state            text,
    xact_start       timestamptz,
    xact_age         interval,
    query_start      timestamptz,
    query            text,
    backend_xid      xid,
    prepared_gid     text
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT h.* FROM (
        SELECT a.pid, a.datname, a.usename, a.application_name::text, a.state, a.xact_start,
               clock_timestamp() - a.xact_start, a.query_start, a.query, a.backend_xid, NULL::text
          FROM pg_stat_activity AS a
         WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
        UNION ALL
        SELECT NULL, p.database, p.owner, NULL, 'prepared', p.prepared,
               clock_timestamp() - p.prepared, NULL, NULL, p.transaction, p.gid
          FROM pg_prepared_xacts AS p
    ) AS h
     ORDER BY age(h.backend_xid) DESC, h.pid
$$;
