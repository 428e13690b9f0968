{{- $s := .schema | default "es" -}}
-- es: the keys of data subjects, for crypto-shredding (see migration 007).
--
-- The Go codec encrypts an event's personal fields (struct fields tagged
-- es:"personal") with AES-256-GCM under its subject's key, and the state of
-- a snapshot that holds them under the key of every subject in it. Deleting
-- a subject's key (forget_subject) makes all of that unreadable at once:
-- every event and snapshot of the subject, on this server, on its replicas
-- (which apply the deletion) and in every backup taken after it; the rest
-- of each event stays readable. The keys never leave this table but to a
-- caller of subject_key: the reader and writer roles cannot SELECT it
-- (roles.sql).
--
-- Grants: subject_key to <schema>_keyholder (granted to <schema>_writer
-- when created), forget_subject to <schema>_forgetter (granted to nobody:
-- an administrator grants it to the logins that may forget).
--
-- SQLSTATE raised: PE003 for a NULL, empty or over-long subject id (or a
-- NULL p_create); PE012 for the key of a forgotten subject.
--
-- The deleted key stays in the table's file until VACUUM removes the dead
-- row (and in WAL, WAL archives and backups taken before, until they
-- expire): run VACUUM on subject_keys after forgetting, and keep backups
-- for a bounded time.

-- subject_key returns the subject's key (32 bytes). A subject without one
-- gets a new random key when p_create, else NULL. A forgotten subject's
-- key is never returned nor created again: PE012. Concurrent callers
-- creating the same subject's key get the same key (the primary key
-- serialises them), and a concurrent forget_subject wins either way: it
-- waits for the key's row and deletes the key.
CREATE OR REPLACE FUNCTION {{ $s }}.subject_key(p_subject_id text, p_create boolean) RETURNS bytea
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_key       bytea;
    v_forgotten timestamptz;
BEGIN
    IF coalesce(p_subject_id, '') = '' OR octet_length(p_subject_id) > 1000 OR p_create IS NULL THEN
        RAISE EXCEPTION 'subject_key: subject id must be 1 to 1000 bytes and create must not be null'
            USING ERRCODE = 'PE003',
                  DETAIL = json_build_object('argument', CASE WHEN p_create IS NULL THEN 'create' ELSE 'subject_id' END)::text;
    END IF;
    FOR i IN 1 .. 2 LOOP
        SELECT k.key, k.forgotten_at INTO v_key, v_forgotten
          FROM {{ $s }}.subject_keys AS k WHERE k.subject_id = p_subject_id;
        IF v_forgotten IS NOT NULL THEN
            RAISE EXCEPTION 'subject_key: subject % is forgotten', p_subject_id
                USING ERRCODE = 'PE012', DETAIL = json_build_object('subject_id', p_subject_id, 'forgotten_at', v_forgotten)::text;
        END IF;
        IF v_key IS NOT NULL OR NOT p_create THEN
            RETURN v_key;
        END IF;
        -- 32 bytes from 366 bits of the server's strong random source
        -- (gen_random_uuid), through SHA-256.
        INSERT INTO {{ $s }}.subject_keys AS k (subject_id, key)
        VALUES (p_subject_id, sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                                     || uuid_send(gen_random_uuid())))
        ON CONFLICT ON CONSTRAINT subject_keys_pkey DO NOTHING
        RETURNING k.key INTO v_key;
        IF v_key IS NOT NULL THEN
            RETURN v_key;
        END IF;
        -- Another transaction stored the row first (and committed): read it.
    END LOOP;
    RAISE EXCEPTION 'subject_key: the key of subject % could not be read', p_subject_id;
END
$$;

-- forget_subject deletes the subject's key for good and records who
-- (session_user) forgot it and when in subject_erasures, in the same
-- transaction. It returns true when this call forgot the subject, false
-- when it was already forgotten (nothing written). A subject without a key
-- can be forgotten too: it never gets one.
CREATE OR REPLACE FUNCTION {{ $s }}.forget_subject(p_subject_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_had_key boolean := true;
BEGIN
    IF coalesce(p_subject_id, '') = '' OR octet_length(p_subject_id) > 1000 THEN
        RAISE EXCEPTION 'forget_subject: subject id must be 1 to 1000 bytes'
            USING ERRCODE = 'PE003', DETAIL = '{"argument": "subject_id"}';
    END IF;
    UPDATE {{ $s }}.subject_keys AS k SET key = NULL, forgotten_at = now()
     WHERE k.subject_id = p_subject_id AND k.forgotten_at IS NULL;
    IF NOT FOUND THEN
        INSERT INTO {{ $s }}.subject_keys (subject_id, key, forgotten_at) VALUES (p_subject_id, NULL, now())
        ON CONFLICT ON CONSTRAINT subject_keys_pkey DO NOTHING;
        IF FOUND THEN
            v_had_key := false;
        ELSE
            -- Already forgotten, or a key created by a transaction that
            -- committed while this one waited on its row.
            UPDATE {{ $s }}.subject_keys AS k SET key = NULL, forgotten_at = now()
             WHERE k.subject_id = p_subject_id AND k.forgotten_at IS NULL;
            IF NOT FOUND THEN
                RETURN false;
            END IF;
        END IF;
    END IF;
    INSERT INTO {{ $s }}.subject_erasures (subject_id, forgotten_by, had_key)
    VALUES (p_subject_id, session_user, v_had_key);
    RETURN true;
END
$$;
