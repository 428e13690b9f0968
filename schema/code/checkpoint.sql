{{- $s := .schema | default "es" -}}
-- es: subscription checkpoints.
--
-- A checkpoint is the position (transaction_id, global_position) up to
-- which a named subscription has processed the global log; read_all from it
-- returns what comes next. It only ever moves forwards.
--
-- SQLSTATEs raised:
--   PE003  invalid argument      DETAIL: {"argument"}
--   PE007  checkpoint conflict   DETAIL: {"subscription_id", "expected", "actual", "position"}
--   PE010  subscription running  DETAIL: {"subscription_id"}

-- read_checkpoint returns one row for any subscription id: its saved
-- position, ('0', 0) (the start of the log) when it has none, whether it
-- exists, and when it was last advanced (NULL when it does not exist).
CREATE OR REPLACE FUNCTION {{ $s }}.read_checkpoint(p_subscription_id text)
RETURNS TABLE (
    subscription_id   text,
    transaction_id    xid8,
    global_position   bigint,
    checkpoint_exists boolean,
    updated_at        timestamptz
)
LANGUAGE sql STABLE AS $$
    SELECT p_subscription_id, COALESCE(c.transaction_id, '0'::pg_catalog.xid8), COALESCE(c.global_position, 0::pg_catalog.int8),
           c.subscription_id IS NOT NULL, c.updated_at
      FROM (SELECT) AS one
      LEFT JOIN {{ $s }}.checkpoints AS c ON c.subscription_id OPERATOR(pg_catalog.=) p_subscription_id
     WHERE CASE WHEN COALESCE(p_subscription_id, ''::pg_catalog.text) OPERATOR(pg_catalog.=) ''::pg_catalog.text
                THEN {{ $s }}.invalid_argument('read_checkpoint', 'subscription_id', 'must not be null or empty',
                                               pg_catalog.octet_length(p_subscription_id)) OPERATOR(pg_catalog.=) 0::pg_catalog.int8
                ELSE true END
$$;

-- check_checkpoint_position raises PE003 for a position a checkpoint
-- cannot be at: NULL, negative, or beyond the last event of the log, or of
-- the events removed from it (a checkpoint there would skip every event to
-- come).
CREATE OR REPLACE FUNCTION {{ $s }}.check_checkpoint_position(p_function text, p_transaction_id xid8, p_position bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_transaction_id IS NULL OR p_position IS NULL OR p_position < 0 THEN
        RAISE EXCEPTION '%: position %/% is invalid (want a transaction id and a non-negative global position)',
                p_function, coalesce(p_transaction_id::text, 'NULL'), coalesce(p_position::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "position"}';
    END IF;
    -- The first event at or after the position, in index order: one
    -- probe. (Not an EXISTS: PostgreSQL drops an EXISTS subquery's ORDER
    -- BY and LIMIT, and for a position known only at run time it plans a
    -- sequential scan, which meets the events after a late position only
    -- after reading the whole log before it, on every checkpoint save.)
    IF (p_transaction_id, p_position) > ('0', 0)
       AND (SELECT e.global_position FROM {{ $s }}.all_events AS e
             WHERE (e.transaction_id, e.global_position) >= (p_transaction_id, p_position)
             ORDER BY e.transaction_id, e.global_position
             LIMIT 1) IS NULL
       -- Nor was it the position of an event removed since (a tombstone
       -- or retention may have removed the log's last events after the
       -- subscription handled them).
       AND NOT EXISTS (SELECT FROM {{ $s }}.transaction_key_base AS b
                        WHERE (p_transaction_id, p_position) <= (b.removed_transaction_id, b.removed_global_position)) THEN
        RAISE EXCEPTION '%: position %/% is beyond the last event of the log', p_function, p_transaction_id, p_position
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "position"}',
                  HINT = 'a checkpoint is the position of an event the subscription has handled';
    END IF;
END
$$;

-- advance_checkpoint moves a subscription's checkpoint from the position
-- the caller read (expected) forwards to a new position, creating it when
-- it does not exist, and returns the saved row.
--
-- Compare-and-set: when the checkpoint is not at the expected position
-- (another instance moved it), it raises PE007 and changes nothing, so the
-- calling transaction, with whatever it wrote for the events, rolls back.
-- A subscription without a checkpoint is at ('0', 0). With a NULL expected
-- position nothing is compared, but the checkpoint still never moves
-- backwards: a new position before the saved one raises PE007, the saved
-- one itself changes nothing but updated_at. A new position before the
-- expected one, a NULL or negative position, a position beyond the last
-- event of the log (a checkpoint there would skip every event to come) or
-- an empty subscription id raise PE003.
CREATE OR REPLACE FUNCTION {{ $s }}.advance_checkpoint(
    p_subscription_id         text,
    p_expected_transaction_id xid8,
    p_expected_position       bigint,
    p_transaction_id          xid8,
    p_position                bigint
) RETURNS TABLE (
    subscription_id text,
    transaction_id  xid8,
    global_position bigint,
    updated_at      timestamptz
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_transaction_id xid8;
    v_position       bigint;
BEGIN
    IF p_subscription_id IS NULL OR p_subscription_id = '' THEN
        RAISE EXCEPTION 'advance_checkpoint: subscription id must not be null or empty'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "subscription_id"}';
    END IF;
    IF (p_expected_transaction_id IS NULL) <> (p_expected_position IS NULL) OR p_expected_position < 0 THEN
        RAISE EXCEPTION 'advance_checkpoint: expected position %/% is invalid (want both parts, or both NULL)',
                coalesce(p_expected_transaction_id::text, 'NULL'), coalesce(p_expected_position::text, 'NULL')
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "expected"}';
    END IF;
    PERFORM {{ $s }}.check_checkpoint_position('advance_checkpoint', p_transaction_id, p_position);
    IF p_expected_transaction_id IS NOT NULL
       AND (p_transaction_id, p_position) < (p_expected_transaction_id, p_expected_position) THEN
        RAISE EXCEPTION 'advance_checkpoint: position %/% is before the expected position %/%: a checkpoint never moves backwards',
                p_transaction_id, p_position, p_expected_transaction_id, p_expected_position
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "position"}';
    END IF;

    LOOP
        -- Waits for the row lock of a concurrent advance, then compares
        -- against the row it committed.
        UPDATE {{ $s }}.checkpoints AS c
           SET transaction_id = p_transaction_id, global_position = p_position, updated_at = now()
         WHERE c.subscription_id = p_subscription_id
           AND CASE WHEN p_expected_transaction_id IS NULL
                    THEN (c.transaction_id, c.global_position) <= (p_transaction_id, p_position)
                    ELSE (c.transaction_id, c.global_position) = (p_expected_transaction_id, p_expected_position)
               END
        RETURNING c.subscription_id, c.transaction_id, c.global_position, c.updated_at
             INTO subscription_id, transaction_id, global_position, updated_at;
        IF FOUND THEN
            RETURN NEXT;
            RETURN;
        END IF;

        SELECT c.transaction_id, c.global_position INTO v_transaction_id, v_position
          FROM {{ $s }}.checkpoints AS c
         WHERE c.subscription_id = p_subscription_id;
        IF FOUND THEN
            EXIT; -- elsewhere than expected
        END IF;
        -- No checkpoint: it is at the start of the log.
        v_transaction_id := '0';
        v_position := 0;
        IF p_expected_transaction_id IS NOT NULL
           AND (p_expected_transaction_id, p_expected_position) <> ('0'::xid8, 0::bigint) THEN
            EXIT;
        END IF;
        INSERT INTO {{ $s }}.checkpoints AS c (subscription_id, transaction_id, global_position)
        VALUES (p_subscription_id, p_transaction_id, p_position)
        ON CONFLICT ON CONSTRAINT checkpoints_pkey DO NOTHING
        RETURNING c.subscription_id, c.transaction_id, c.global_position, c.updated_at
             INTO subscription_id, transaction_id, global_position, updated_at;
        IF FOUND THEN
            RETURN NEXT;
            RETURN;
        END IF;
        -- Created (and committed) by another transaction meanwhile:
        -- compare against it.
    END LOOP;

    RAISE EXCEPTION 'advance_checkpoint: the checkpoint of % is at %/%, not at the expected %/%',
            p_subscription_id, v_transaction_id, v_position,
            coalesce(p_expected_transaction_id::text, 'at most ' || p_transaction_id::text),
            coalesce(p_expected_position, p_position)
        USING ERRCODE = 'PE007',
              HINT = 'another instance of the subscription has moved it: read it again',
              DETAIL = json_build_object('subscription_id', p_subscription_id,
                                         'expected', CASE WHEN p_expected_transaction_id IS NULL THEN NULL
                                                          ELSE p_expected_transaction_id || '/' || p_expected_position END,
                                         'actual', v_transaction_id || '/' || v_position,
                                         'position', p_transaction_id || '/' || p_position)::text;
END
$$;

-- refuse_while_running raises PE010 when an instance of the subscription
-- is running: its checkpoint is then its own to move.
CREATE OR REPLACE FUNCTION {{ $s }}.refuse_while_running(p_function text, p_subscription_id text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF {{ $s }}.subscription_running(p_subscription_id) THEN
        RAISE EXCEPTION '%: subscription % is running', p_function, p_subscription_id
            USING ERRCODE = 'PE010', DETAIL = json_build_object('subscription_id', p_subscription_id)::text,
                  HINT = 'stop every instance of the subscription first';
    END IF;
END
$$;

-- delete_checkpoint removes a subscription's checkpoint, so that it starts
-- again as configured (from the start or the end of the log), for example
-- to rebuild a read model. It returns whether there was one. It refuses
-- (PE010) while an instance of the subscription is running.
CREATE OR REPLACE FUNCTION {{ $s }}.delete_checkpoint(p_subscription_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce(p_subscription_id, '') = '' THEN
        RAISE EXCEPTION 'delete_checkpoint: subscription id must not be null or empty'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "subscription_id"}';
    END IF;
    PERFORM {{ $s }}.refuse_while_running('delete_checkpoint', p_subscription_id);
    DELETE FROM {{ $s }}.checkpoints AS c WHERE c.subscription_id = p_subscription_id;
    RETURN FOUND;
END
$$;

-- reset_checkpoint sets a subscription's checkpoint to a position, before
-- or after the one it has (the start of the log is '0'/0): the
-- subscription resumes after it. Call it in the transaction that resets
-- the read model (truncates it, or rewinds it to that position), so that
-- both commit together. It refuses (PE010) while an instance of the
-- subscription is running, and (PE003) a position beyond the last event
-- of the log. It returns the saved row.
CREATE OR REPLACE FUNCTION {{ $s }}.reset_checkpoint(p_subscription_id text, p_transaction_id xid8, p_position bigint)
RETURNS TABLE (
    subscription_id text,
    transaction_id  xid8,
    global_position bigint,
    updated_at      timestamptz
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce(p_subscription_id, '') = '' THEN
        RAISE EXCEPTION 'reset_checkpoint: subscription id must not be null or empty'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "subscription_id"}';
    END IF;
    PERFORM {{ $s }}.check_checkpoint_position('reset_checkpoint', p_transaction_id, p_position);
    PERFORM {{ $s }}.refuse_while_running('reset_checkpoint', p_subscription_id);
    RETURN QUERY
    INSERT INTO {{ $s }}.checkpoints AS c (subscription_id, transaction_id, global_position)
    VALUES (p_subscription_id, p_transaction_id, p_position)
    ON CONFLICT ON CONSTRAINT checkpoints_pkey DO UPDATE
       SET transaction_id = excluded.transaction_id, global_position = excluded.global_position, updated_at = now()
    RETURNING c.subscription_id, c.transaction_id, c.global_position, c.updated_at;
END
$$;
