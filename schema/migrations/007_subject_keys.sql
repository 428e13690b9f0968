{{- $s := .schema | default "es" -}}
-- es: crypto-shredding. One secret key per data subject, with which the Go
-- codec encrypts the personal fields of events and snapshots; forgetting a
-- subject deletes its key (the row stays, keyless, so that the subject never
-- gets a key again), and records who forgot it and when. See
-- schema/code/subjects.sql.

SET LOCAL search_path = pg_catalog, pg_temp;

-- The keys: readable by the owner alone (roles.sql revokes SELECT from the
-- reader and writer roles); <schema>_keyholder reads and creates them
-- through subject_key.
CREATE TABLE {{ $s }}.subject_keys (
    subject_id   text        NOT NULL,
    key          bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz,
    CONSTRAINT subject_keys_pkey PRIMARY KEY (subject_id),
    CONSTRAINT subject_keys_subject_id_check CHECK (subject_id <> '' AND octet_length(subject_id) <= 1000),
    CONSTRAINT subject_keys_key_check CHECK (key IS NULL AND forgotten_at IS NOT NULL
                                             OR octet_length(key) = 32 AND forgotten_at IS NULL)
);

-- The audit of forget_subject: one row per forgotten subject, written in
-- the transaction that deleted its key.
CREATE TABLE {{ $s }}.subject_erasures (
    subject_id   text        NOT NULL,
    forgotten_at timestamptz NOT NULL DEFAULT now(),
    forgotten_by text        NOT NULL,
    had_key      boolean     NOT NULL,
    CONSTRAINT subject_erasures_pkey PRIMARY KEY (subject_id)
);

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

-- The roles of this migration's functions (created by roles.sql once the
-- tables exist) go with it, as migration 001 drops the others: unless
-- granted to a role other than <schema>_writer (kept, with a notice), or
-- holding privileges in another database's installation (DROP ROLE then
-- fails: kept).
DO $down$
DECLARE
    v_schema CONSTANT text := '{{ $s }}';
    v_writer CONSTANT text := '{{ $s }}_writer';
    v_role   text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY[v_schema || '_keyholder', v_schema || '_forgetter'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_role);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', v_schema, v_role);
        EXECUTE format('REVOKE ALL ON ALL ROUTINES IN SCHEMA %I FROM %I', v_schema, v_role);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', v_schema, v_role);
        IF EXISTS (SELECT FROM pg_catalog.pg_auth_members AS m
                    WHERE m.roleid = v_role::pg_catalog.regrole
                      AND m.member::pg_catalog.regrole::text OPERATOR(pg_catalog.<>) pg_catalog.quote_ident(v_writer)) THEN
            RAISE NOTICE 'keeping role %: it is granted to other roles', v_role;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('DROP ROLE %I', v_role);
        EXCEPTION
            WHEN dependent_objects_still_exist THEN
                RAISE NOTICE 'keeping role %: %', v_role, SQLERRM;
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'keeping role %: the migrating user cannot drop it', v_role;
        END;
    END LOOP;
END
$down$;

DROP TABLE {{ $s }}.subject_erasures, {{ $s }}.subject_keys;
