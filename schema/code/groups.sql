{{- $s := .schema | default "es" -}}
-- es: consumer groups: one subscription run as N partitions by a group of
-- members (workers, in any number of processes).
--
-- Partition p of N is an ordinary subscription (its own checkpoint, lease,
-- status and parked events, under a name the client chooses, e.g.
-- "order_details/3-of-8") that reads only the streams with
-- stream_partition(stream_id, N) = p (read_partition), so each stream's
-- events are handled in order by one partition. A member registers and
-- renews its membership with join_group, which tells it how many members
-- share the group and which partitions no member holds; it takes at most
-- its fair share (ceil(N / members)) with take_partition, and hands back
-- what exceeds it when members join. A member whose backend has gone (a
-- killed process, a terminated connection) or that stopped renewing is no
-- member any more, and its partitions' leases lapse likewise (leases.sql):
-- the others take them over.
--
-- Resizing: a member started with another N than the group's waits (its
-- join_group returns 0 members) until no member of the current N and no
-- lease on its partitions is left; then its join_group switches the group
-- to its N. The client starts the new partitions from the checkpoints of
-- the old ones (see es.SubscribeOpts.Partitions).
--
-- Nothing here holds a transaction open or an advisory lock; only these
-- functions write the tables.
--
-- SQLSTATE raised: PE003 for a NULL or empty group or holder, a partition
-- count outside 1..1024, a partition outside 0..N-1, a TTL that is not
-- positive, or a subscription id registered as another partition.

-- check_group_arguments raises PE003 for bad group arguments.
CREATE OR REPLACE FUNCTION {{ $s }}.check_group_arguments(p_function text, p_group text, p_holder text, p_partitions int, p_ttl interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_group IS NULL OR p_group = '' OR p_holder IS NULL OR p_holder = '' THEN
        RAISE EXCEPTION '%: group and holder must not be null or empty', p_function
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "group"}';
    END IF;
    IF p_partitions IS NULL OR p_partitions NOT BETWEEN 1 AND 1024 THEN
        RAISE EXCEPTION '%: partitions must be between 1 and 1024, got %', p_function, coalesce(p_partitions::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "partitions"}';
    END IF;
    IF p_ttl IS NULL OR p_ttl <= interval '0' THEN
        RAISE EXCEPTION '%: ttl must be positive, got %', p_function, coalesce(p_ttl::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "ttl"}';
    END IF;
END
$$;

-- group_partitions_held lists the partitions of the group's layout of
-- p_partitions whose lease is held (by a live lease).
CREATE OR REPLACE FUNCTION {{ $s }}.group_partitions_held(p_group text, p_partitions int) RETURNS SETOF int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT p.partition
      FROM {{ $s }}.subscription_partitions AS p
      JOIN {{ $s }}.subscription_leases AS l ON l.subscription_id = p.subscription_id
     WHERE p.group_name = p_group AND p.partitions = p_partitions
       AND {{ $s }}.lease_live(l.expires_at, l.holder_pid);
END
$$;

-- join_group registers the member p_holder of group p_group, started with
-- p_partitions partitions, for p_ttl (or renews it: call it at least every
-- third of p_ttl), creating the group when it does not exist. It returns
-- the number of live members of the group's current partition count and
-- the partitions whose lease no member holds; or 0 members and no
-- partitions while the group runs with another count (a resize waits for
-- its members to stop; then the first member to call switches the group to
-- its count, and the checkpoints of that count's partitions from an
-- earlier time are removed: they are older than what the other count
-- handled since).
--
-- Members call it often (every LeasePollInterval), so in the steady state
-- it writes nothing: it renews the membership only once a third of the TTL
-- has passed (or when the backend that renewed it has gone), and locks the
-- group's row only to resize. A writing transaction would hold back every
-- reader of the global log while it waits for a lock.
CREATE OR REPLACE FUNCTION {{ $s }}.join_group(p_group text, p_holder text, p_partitions int, p_ttl interval)
RETURNS TABLE (members int, free_partitions int[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_current int;
BEGIN
    PERFORM {{ $s }}.check_group_arguments('join_group', p_group, p_holder, p_partitions, p_ttl);
    UPDATE {{ $s }}.group_members AS m
       SET holder_pid = pg_backend_pid(), partitions = p_partitions,
           renewed_at = clock_timestamp(), expires_at = clock_timestamp() + p_ttl
     WHERE m.group_name = p_group AND m.holder = p_holder
       AND (m.renewed_at < clock_timestamp() - p_ttl / 3 OR m.partitions <> p_partitions
            OR NOT {{ $s }}.lease_live(m.expires_at, m.holder_pid));
    IF NOT FOUND AND NOT EXISTS (SELECT FROM {{ $s }}.group_members AS m
                                  WHERE m.group_name = p_group AND m.holder = p_holder) THEN
        INSERT INTO {{ $s }}.group_members (group_name, holder, holder_pid, partitions, expires_at)
        VALUES (p_group, p_holder, pg_backend_pid(), p_partitions, clock_timestamp() + p_ttl)
        ON CONFLICT ON CONSTRAINT group_members_pkey DO NOTHING;
    END IF;
    DELETE FROM {{ $s }}.group_members AS m
     WHERE m.group_name = p_group AND NOT {{ $s }}.lease_live(m.expires_at, m.holder_pid);

    SELECT g.partitions INTO v_current FROM {{ $s }}.subscription_groups AS g WHERE g.group_name = p_group;
    IF NOT FOUND THEN
        INSERT INTO {{ $s }}.subscription_groups (group_name, partitions) VALUES (p_group, p_partitions)
        ON CONFLICT ON CONSTRAINT subscription_groups_pkey DO NOTHING;
        SELECT g.partitions INTO v_current FROM {{ $s }}.subscription_groups AS g WHERE g.group_name = p_group;
    END IF;
    IF v_current <> p_partitions THEN
        -- A resize, perhaps: decide under the group's row lock.
        SELECT g.partitions INTO v_current FROM {{ $s }}.subscription_groups AS g
         WHERE g.group_name = p_group FOR UPDATE;
    END IF;
    IF v_current <> p_partitions THEN
        IF EXISTS (SELECT FROM {{ $s }}.group_members AS m
                    WHERE m.group_name = p_group AND m.partitions = v_current
                      AND {{ $s }}.lease_live(m.expires_at, m.holder_pid))
           OR EXISTS (SELECT FROM {{ $s }}.group_partitions_held(p_group, v_current)) THEN
            members := 0;
            free_partitions := '{}';
            RETURN NEXT;
            RETURN;
        END IF;
        UPDATE {{ $s }}.subscription_groups AS g
           SET partitions = p_partitions, previous_partitions = v_current, resized_at = clock_timestamp()
         WHERE g.group_name = p_group;
        DELETE FROM {{ $s }}.checkpoints AS c
         USING {{ $s }}.subscription_partitions AS p
         WHERE p.subscription_id = c.subscription_id AND p.group_name = p_group AND p.partitions = p_partitions;
        RAISE LOG 'es: consumer group % resized from % to % partitions', p_group, v_current, p_partitions;
        v_current := p_partitions;
    END IF;

    SELECT count(*) INTO members FROM {{ $s }}.group_members AS m
     WHERE m.group_name = p_group AND m.partitions = v_current
       AND {{ $s }}.lease_live(m.expires_at, m.holder_pid);
    SELECT coalesce(array_agg(n.p ORDER BY n.p), '{}') INTO free_partitions
      FROM generate_series(0, v_current - 1) AS n(p)
     WHERE n.p NOT IN (SELECT h.h FROM {{ $s }}.group_partitions_held(p_group, v_current) AS h(h));
    RETURN NEXT;
END
$$;

-- leave_group removes the member p_holder from the group (it stops), so
-- that the others take its share at once, and returns whether it was a
-- member.
CREATE OR REPLACE FUNCTION {{ $s }}.leave_group(p_group text, p_holder text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_group_arguments('leave_group', p_group, p_holder, 1, interval '1 second');
    DELETE FROM {{ $s }}.group_members AS m WHERE m.group_name = p_group AND m.holder = p_holder;
    RETURN FOUND;
END
$$;

-- take_partition takes, for the member p_holder, the lease of partition
-- p_partition of p_partitions of the group, whose subscription id is
-- p_subscription_id, for p_ttl, and returns whether it got it: false when
-- another member holds it, or when the group no longer runs with
-- p_partitions partitions. It registers the subscription id as that
-- partition (subscription_partitions: its lag counts its own streams).
CREATE OR REPLACE FUNCTION {{ $s }}.take_partition(
    p_subscription_id text,
    p_group           text,
    p_partition       int,
    p_partitions      int,
    p_holder          text,
    p_ttl             interval
) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM {{ $s }}.check_group_arguments('take_partition', p_group, p_holder, p_partitions, p_ttl);
    PERFORM {{ $s }}.check_lease_arguments('take_partition', p_subscription_id, p_holder, p_ttl);
    IF p_partition IS NULL OR p_partition < 0 OR p_partition >= p_partitions THEN
        RAISE EXCEPTION 'take_partition: partition must be between 0 and %, got %', p_partitions - 1, coalesce(p_partition::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "partition"}';
    END IF;
    IF NOT EXISTS (SELECT FROM {{ $s }}.subscription_groups AS g
                    WHERE g.group_name = p_group AND g.partitions = p_partitions) THEN
        RETURN false;
    END IF;
    INSERT INTO {{ $s }}.subscription_partitions (subscription_id, group_name, partition, partitions)
    VALUES (p_subscription_id, p_group, p_partition, p_partitions)
    ON CONFLICT DO NOTHING;
    IF NOT EXISTS (SELECT FROM {{ $s }}.subscription_partitions AS p
                    WHERE p.subscription_id = p_subscription_id AND p.group_name = p_group
                      AND p.partition = p_partition AND p.partitions = p_partitions) THEN
        RAISE EXCEPTION 'take_partition: subscription % is not partition % of % of group %, or that partition has another name',
                p_subscription_id, p_partition, p_partitions, p_group
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "subscription_id"}';
    END IF;
    RETURN {{ $s }}.acquire_lease(p_subscription_id, p_holder, p_ttl);
END
$$;
