{{- $s := .schema | default "es" -}}
-- es: transaction keys and the horizon of the global log.
--
-- The global log is ordered by (transaction_id, global_position), where
-- transaction_id is the appending transaction's key:
--
--     key = the installation's key base + the transaction's xid
--
-- (taken as the greatest of that and the stream's previous key, see
-- append). read_all returns only events whose key is below the horizon
--
--     key base + pg_snapshot_xmin(pg_current_snapshot())
--
-- so an event that commits later can never sort before one already read:
-- every transaction still running or yet to start has an xid at or above
-- that xmin, hence a key at or above the horizon.
--
-- The key base (the one row of transaction_key_base) is 0 until the
-- database is moved to a cluster whose xid counter is behind its keys: a
-- pg_dump/pg_restore into a fresh cluster (which starts at xid ~750), or
-- any copy into a cluster with a lower counter. Raw xids would then sort
-- every new event below the restored ones and below every saved
-- checkpoint, and subscriptions would skip them for good. Instead:
--
--   * keys_behind tells when the log holds a key that this cluster's
--     counter does not reach (a key at or above base + the next xid: in a
--     cluster that produced all the keys, every key is below it);
--   * append then raises the base (raise_key_base) before taking its key
--     (base + its xid),
--     so that base + every xid still to come is above every stored key;
--   * until an append has done so, the horizon is just above the largest
--     key: every event of the log is committed (none can be appended
--     without raising the base first), so read_all returns them all.
--
-- pg_upgrade and a promoted standby keep the xid counter, so they need no
-- raise; a restore needs no manual step. The base never decreases.

-- keys_behind reports whether the log's largest key (p_max_key, NULL for
-- an empty log) is at or above what this cluster gives a transaction: the
-- base plus the next xid to be assigned (the snapshot's xmax, or the own
-- xid + 1 when it is larger: a transaction sees its own uncommitted keys).
-- Plain SQL with qualified operators (an OPERATOR() form has one
-- precedence for all, hence the parentheses): it is inlined into its
-- callers.
CREATE OR REPLACE FUNCTION {{ $s }}.keys_behind(p_base bigint, p_max_key xid8) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(
        p_max_key::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.>=) (p_base OPERATOR(pg_catalog.+) GREATEST(
            pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::pg_catalog.text::pg_catalog.int8,
            pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.+) 1)),
        false)
$$;

-- raise_key_base raises the key base when the log's keys are behind this
-- cluster's counter, and returns the base in force. The row lock
-- serialises concurrent callers: the ones that waited find the base
-- raised and return it. The new base puts base + xmin (the oldest xid any
-- transaction may still append with) just above the largest key, so
-- every key given from now on sorts after every stored event and after
-- every saved checkpoint. The raise is logged and recorded in
-- transaction_key_base (raised_at, previous_base).
CREATE OR REPLACE FUNCTION {{ $s }}.raise_key_base() RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_base bigint;
    v_max  xid8;
    v_xmin bigint;
    v_new  numeric;
BEGIN
    SELECT b.base INTO STRICT v_base FROM {{ $s }}.transaction_key_base AS b FOR UPDATE;
    -- A new statement: its snapshot sees what a concurrent raise committed.
    v_max := {{ $s }}.log_max_key();
    IF NOT {{ $s }}.keys_behind(v_base, v_max) THEN
        RETURN v_base;
    END IF;
    v_xmin := pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
    v_new := v_max::text::numeric + 1 - v_xmin;
    IF v_new > 4611686018427387904 THEN -- 2^62: keys must stay far from the bigint limit
        RAISE EXCEPTION 'the largest transaction key of schema {{ $s }} (%) is too large to continue the log', v_max
            USING ERRCODE = 'PE009',
                  HINT = 'an event with an impossible transaction_id was written directly into {{ $s }}.events';
    END IF;
    UPDATE {{ $s }}.transaction_key_base AS b
       SET base = v_new::bigint, previous_base = b.base, raised_at = now();
    RAISE LOG 'es: schema {{ $s }}: raised the transaction key base from % to %: the log holds keys up to % and this cluster''s transactions start at %',
        v_base, v_new, v_max, v_xmin;
    RETURN v_new::bigint;
END
$$;

-- log_horizon returns the horizon of the global log for the caller's
-- snapshot: read_all returns only events whose key is below it. It is
-- base + xmin, or, while the log's keys are ahead of this cluster (a
-- restored database before its first append), just above the largest
-- key.
CREATE OR REPLACE FUNCTION {{ $s }}.log_horizon() RETURNS xid8
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_base bigint;
    v_max  xid8;
BEGIN
    SELECT b.base, {{ $s }}.log_max_key()
      INTO STRICT v_base, v_max
      FROM {{ $s }}.transaction_key_base AS b;
    IF {{ $s }}.keys_behind(v_base, v_max) THEN
        RETURN (v_max::text::numeric + 1)::text::xid8;
    END IF;
    RETURN (v_base + pg_snapshot_xmin(pg_current_snapshot())::text::bigint)::text::xid8;
END
$$;
