{{- $s := .schema | default "es" -}}
-- es: parked events (see migration 004). A subscription that parks
-- (opt-in) records an event its handler kept failing on, and every later
-- event of the same stream while one is parked (behind = true, the
-- handler not called), so that a stream's events are never handled out of
-- order; its checkpoint then moves past them. Parked events stay visible
-- in parked_events until an operator retries them (the running
-- subscription hands them to its handler again, in order) or skips them.
--
-- SQLSTATE raised: PE003 for NULL or empty arguments.

-- park_event records a parked event for the holder of the subscription's
-- lease (a stale instance parks nothing: false). Parking an event again
-- (an instance that crashed before its checkpoint moved) updates it.
CREATE OR REPLACE FUNCTION {{ $s }}.park_event(
    p_subscription_id text,
    p_holder          text,
    p_transaction_id  xid8,
    p_position        bigint,
    p_stream_id       text,
    p_event_id        uuid,
    p_event_type      text,
    p_behind          boolean,
    p_error           text,
    p_attempts        int
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_lease_arguments('park_event', p_subscription_id, p_holder, NULL);
    IF p_transaction_id IS NULL OR p_position IS NULL OR coalesce(p_stream_id, '') = '' OR p_event_id IS NULL
       OR coalesce(p_event_type, '') = '' OR p_behind IS NULL OR p_attempts IS NULL OR p_attempts < 0 THEN
        RAISE EXCEPTION 'park_event: position, stream id, event id, event type, behind and attempts must be given'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "event"}';
    END IF;
    IF NOT {{ $s }}.holds_lease(p_subscription_id, p_holder) THEN
        RETURN false;
    END IF;
    INSERT INTO {{ $s }}.parked_events AS p (subscription_id, transaction_id, global_position, stream_id, event_id,
                                             event_type, behind, error, attempts)
    VALUES (p_subscription_id, p_transaction_id, p_position, p_stream_id, p_event_id, p_event_type, p_behind,
            left(p_error, 10000), p_attempts)
    ON CONFLICT ON CONSTRAINT parked_events_pkey DO UPDATE
       SET behind = excluded.behind, error = excluded.error, attempts = p.attempts + excluded.attempts,
           parked_at = now(), retry_requested_at = NULL, resolved_at = NULL, resolution = NULL;
    RETURN true;
END
$$;

-- parked_retried records the outcome of a retry by the holder of the
-- subscription's lease: handled (the event is resolved as 'retried'), or
-- failed again (one more attempt, the new error, the request cleared). It
-- returns false when p_holder does not hold the lease (an event resolved
-- meanwhile, skipped by an operator, is left as it is).
CREATE OR REPLACE FUNCTION {{ $s }}.parked_retried(
    p_subscription_id text,
    p_holder          text,
    p_transaction_id  xid8,
    p_position        bigint,
    p_handled         boolean,
    p_error           text
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_lease_arguments('parked_retried', p_subscription_id, p_holder, NULL);
    IF p_transaction_id IS NULL OR p_position IS NULL OR p_handled IS NULL THEN
        RAISE EXCEPTION 'parked_retried: position and outcome must be given'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "position"}';
    END IF;
    IF NOT {{ $s }}.holds_lease(p_subscription_id, p_holder) THEN
        RETURN false;
    END IF;
    UPDATE {{ $s }}.parked_events AS p
       SET resolved_at = CASE WHEN p_handled THEN now() END,
           resolution = CASE WHEN p_handled THEN 'retried' END,
           attempts = p.attempts + 1,
           error = CASE WHEN p_handled THEN p.error ELSE left(p_error, 10000) END,
           retry_requested_at = NULL
     WHERE p.subscription_id = p_subscription_id AND p.transaction_id = p_transaction_id
       AND p.global_position = p_position AND p.resolved_at IS NULL;
    RETURN true;
END
$$;

-- retry_parked asks the running subscription to hand the parked events of
-- the stream of the parked event at the position to its handler again, in
-- order from the stream's earliest (an operator's call; the request is
-- recorded on that earliest one). It returns whether an unresolved parked
-- event is at the position.
CREATE OR REPLACE FUNCTION {{ $s }}.retry_parked(p_subscription_id text, p_transaction_id xid8, p_position bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce(p_subscription_id, '') = '' OR p_transaction_id IS NULL OR p_position IS NULL THEN
        RAISE EXCEPTION 'retry_parked: subscription id and position must be given'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "position"}';
    END IF;
    UPDATE {{ $s }}.parked_events AS p SET retry_requested_at = now()
      FROM (SELECT f.transaction_id, f.global_position
              FROM {{ $s }}.parked_events AS f
             WHERE f.subscription_id = p_subscription_id AND f.resolved_at IS NULL
               AND f.stream_id = (SELECT q.stream_id FROM {{ $s }}.parked_events AS q
                                   WHERE q.subscription_id = p_subscription_id AND q.transaction_id = p_transaction_id
                                     AND q.global_position = p_position AND q.resolved_at IS NULL)
             ORDER BY f.transaction_id, f.global_position
             LIMIT 1) AS first
     WHERE p.subscription_id = p_subscription_id AND p.transaction_id = first.transaction_id
       AND p.global_position = first.global_position;
    RETURN FOUND;
END
$$;

-- skip_parked resolves a parked event without handling it (an operator's
-- call): the events of its stream parked behind it stay parked until they
-- are retried or skipped. It returns whether the event was parked.
CREATE OR REPLACE FUNCTION {{ $s }}.skip_parked(p_subscription_id text, p_transaction_id xid8, p_position bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce(p_subscription_id, '') = '' OR p_transaction_id IS NULL OR p_position IS NULL THEN
        RAISE EXCEPTION 'skip_parked: subscription id and position must be given'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "position"}';
    END IF;
    UPDATE {{ $s }}.parked_events AS p SET resolved_at = now(), resolution = 'skipped', retry_requested_at = NULL
     WHERE p.subscription_id = p_subscription_id AND p.transaction_id = p_transaction_id
       AND p.global_position = p_position AND p.resolved_at IS NULL;
    RETURN FOUND;
END
$$;
