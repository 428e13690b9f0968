{{- $s := .schema | default "es" -}}
-- es: subscription leases: which instance of a named subscription is the
-- active one.
--
-- An instance holds its subscription's lease (a row of
-- subscription_leases) under a holder id it chose (random per run) and
-- renews it well before it expires. Another instance may take the lease
-- when it has expired, or at once when the backend that took it
-- (holder_pid) has gone: a killed process or a terminated connection frees
-- its subscriptions without waiting for the lease to run out. Nothing here
-- holds a transaction open (a row lock or an open transaction would hold
-- back every reader of the global log), and only these functions write the
-- table: no other login can take or hold a subscription's place, as it
-- could with an advisory lock. A stale instance that still believes it is
-- active is stopped by advance_checkpoint's compare-and-set.
--
-- SQLSTATE raised: PE003 for a NULL or empty subscription id or holder, or
-- a TTL that is not positive.

-- check_lease_arguments raises PE003 for bad lease arguments.
CREATE OR REPLACE FUNCTION {{ $s }}.check_lease_arguments(p_function text, p_subscription_id text, p_holder text, p_ttl interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_subscription_id IS NULL OR p_subscription_id = '' OR p_holder IS NULL OR p_holder = '' THEN
        RAISE EXCEPTION '%: subscription id and holder must not be null or empty', p_function
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "subscription_id"}';
    END IF;
    IF p_ttl IS NOT NULL AND p_ttl <= interval '0' THEN
        RAISE EXCEPTION '%: ttl must be positive, got %', p_function, p_ttl
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "ttl"}';
    END IF;
END
$$;

-- lease_live reports whether a lease that expires at p_expires_at, taken
-- on the backend p_holder_pid, still holds: it has not expired and its
-- backend is still there.
CREATE OR REPLACE FUNCTION {{ $s }}.lease_live(p_expires_at timestamptz, p_holder_pid int) RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_expires_at OPERATOR(pg_catalog.>=) pg_catalog.clock_timestamp()
       AND EXISTS (SELECT FROM pg_catalog.pg_stat_get_activity(p_holder_pid) AS a
                    WHERE a.pid OPERATOR(pg_catalog.=) p_holder_pid)
$$;

-- holds_lease reports whether p_holder holds the subscription's lease: a
-- stale instance (its lease taken over) may report, park or record
-- nothing.
CREATE OR REPLACE FUNCTION {{ $s }}.holds_lease(p_subscription_id text, p_holder text) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN EXISTS (SELECT FROM {{ $s }}.subscription_leases AS l
                    WHERE l.subscription_id = p_subscription_id AND l.holder = p_holder);
END
$$;

-- subscription_running reports whether an instance of the subscription
-- holds its lease. (PL/pgSQL: a SQL function's body is checked when it is
-- created, and the code package installs over every version of the
-- tables, some without subscription_leases.)
CREATE OR REPLACE FUNCTION {{ $s }}.subscription_running(p_subscription_id text) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN EXISTS (SELECT FROM {{ $s }}.subscription_leases AS l
                    WHERE l.subscription_id = p_subscription_id
                      AND {{ $s }}.lease_live(l.expires_at, l.holder_pid));
END
$$;

-- acquire_lease takes the subscription's lease for p_holder for p_ttl and
-- returns true, when it is free, expired, held by a backend that has gone,
-- or already held by p_holder (then it is renewed); otherwise it returns
-- false and changes nothing.
CREATE OR REPLACE FUNCTION {{ $s }}.acquire_lease(p_subscription_id text, p_holder text, p_ttl interval)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_lease_arguments('acquire_lease', p_subscription_id, p_holder, coalesce(p_ttl, interval '0'));
    INSERT INTO {{ $s }}.subscription_leases AS l (subscription_id, holder, holder_pid, expires_at)
    VALUES (p_subscription_id, p_holder, pg_backend_pid(), clock_timestamp() + p_ttl)
    ON CONFLICT (subscription_id) DO UPDATE
       SET holder = excluded.holder, holder_pid = excluded.holder_pid,
           acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at ELSE clock_timestamp() END,
           renewed_at = clock_timestamp(), expires_at = excluded.expires_at
     WHERE l.holder = excluded.holder
        OR NOT {{ $s }}.lease_live(l.expires_at, l.holder_pid);
    RETURN FOUND;
END
$$;

-- renew_lease extends p_holder's lease by p_ttl from now and returns true,
-- or returns false when p_holder does not hold it (any more): the
-- instance must then stop acting as the active one.
CREATE OR REPLACE FUNCTION {{ $s }}.renew_lease(p_subscription_id text, p_holder text, p_ttl interval)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_lease_arguments('renew_lease', p_subscription_id, p_holder, coalesce(p_ttl, interval '0'));
    UPDATE {{ $s }}.subscription_leases AS l
       SET renewed_at = clock_timestamp(), expires_at = clock_timestamp() + p_ttl
     WHERE l.subscription_id = p_subscription_id AND l.holder = p_holder;
    RETURN FOUND;
END
$$;

-- release_lease gives p_holder's lease up, so another instance can take it
-- at once, and returns whether p_holder held it.
CREATE OR REPLACE FUNCTION {{ $s }}.release_lease(p_subscription_id text, p_holder text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_lease_arguments('release_lease', p_subscription_id, p_holder, NULL);
    DELETE FROM {{ $s }}.subscription_leases AS l
     WHERE l.subscription_id = p_subscription_id AND l.holder = p_holder;
    RETURN FOUND;
END
$$;
