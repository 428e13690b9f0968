{{- $s := .schema | default "es" -}}
-- es: roles and privileges.
--
-- Two NOLOGIN roles, named after the schema; grant them to the logins of
-- applications and people (GRANT {{ $s }}_writer TO app):
--   {{ $s }}_reader: USAGE on the schema, SELECT on its tables and views,
--       EXECUTE on the read functions (read_stream, read_stream_backward,
--       read_all, stream_info, load, read_checkpoint, the msgpack decoders
--       and the helpers they call);
--   {{ $s }}_writer: everything the reader has (granted directly, not
--       through membership) and EXECUTE on the functions that write
--       (append, append_event, save_snapshot, advance_checkpoint,
--       delete_checkpoint).
-- Nobody but the owner (the role that ran the migrations) has INSERT,
-- UPDATE, DELETE or TRUNCATE on any table: the writing functions are
-- SECURITY DEFINER, run as the owner, and pin search_path to
-- pg_catalog, pg_temp (their bodies name every object of the schema in
-- full), so a caller's search_path cannot redirect them. EXECUTE is revoked
-- from PUBLIC on every function of the schema. UPDATE, DELETE and TRUNCATE
-- on events are refused to everyone, the owner included, by the triggers
-- of 001.
--
-- The read functions and the decoders stay SECURITY INVOKER without a
-- pinned search_path: a function with a SET clause is never inlined, and
-- the read functions are plain SQL so that PostgreSQL inlines them into the
-- calling query (rows stream to the client); their bodies are fully
-- qualified too.
--
-- Functions are classified by name. Trigger functions, and any function
-- this migration does not know (one added by an earlier migration it was
-- not updated for), get no grants: only the owner may execute them (a
-- notice names an unknown one; integration_test/roles_test.go fails on
-- it). A migration that adds a function after this one must revoke and
-- grant its privileges the same way.
--
-- Roles are cluster-wide: every database that installs schema {{ $s }} uses
-- the same two roles (a login granted {{ $s }}_reader can read schema {{ $s }}
-- in every such database it may connect to; install under different schema
-- names to keep them apart). They are created when missing. Creating a role
-- needs CREATEROLE: when the migrating user lacks it and the roles do not
-- exist, the migration fails (SQLSTATE 42501, nothing applied) with a hint:
-- have an administrator create the two roles (CREATE ROLE {{ $s }}_reader
-- NOLOGIN; CREATE ROLE {{ $s }}_writer NOLOGIN), then run the migration
-- again; granting privileges on its own objects needs nothing more.
-- (Going on without the roles would leave every function to the owner
-- alone, silently: the migration refuses instead.)
DO $roles$
DECLARE
    v_schema     CONSTANT text := '{{ $s }}';
    v_reader     CONSTANT text := '{{ $s }}_reader';
    v_writer     CONSTANT text := '{{ $s }}_writer';
    v_read_fns   CONSTANT text[] := ARRAY['read_stream', 'read_stream_backward', 'read_all', 'stream_info',
                                          'load', 'read_checkpoint', 'msgpack_to_jsonb', 'try_msgpack_to_jsonb',
                                          'msgpack_float_text', 'invalid_argument'];
    v_write_fns  CONSTANT text[] := ARRAY['append', 'append_event', 'save_snapshot', 'advance_checkpoint',
                                          'delete_checkpoint'];
    v_role       text;
    v_fn         record;
BEGIN
    FOREACH v_role IN ARRAY ARRAY[v_reader, v_writer] LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_role);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL; -- another database's migration created it meanwhile
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'cannot create role %: the migrating user % lacks CREATEROLE', v_role, current_user
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = format('Have an administrator run CREATE ROLE %I NOLOGIN; CREATE ROLE %I NOLOGIN; then migrate again.',
                                        v_reader, v_writer);
        END;
    END LOOP;

    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I, %I', v_schema, v_reader, v_writer);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC', v_schema);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I, %I', v_schema, v_reader, v_writer);

    FOR v_fn IN
        SELECT format('%I.%I(%s)', v_schema, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)) AS sig,
               CASE WHEN p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype THEN 'trigger'
                    WHEN p.proname = ANY (v_write_fns) THEN 'write'
                    WHEN p.proname = ANY (v_read_fns) THEN 'read'
                    ELSE 'unknown' END AS class
          FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = v_schema::pg_catalog.regnamespace AND p.prokind IN ('f', 'p')
         ORDER BY p.oid
    LOOP
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', v_fn.sig);
        IF v_fn.class = 'read' THEN
            EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I, %I', v_fn.sig, v_reader, v_writer);
        ELSIF v_fn.class = 'write' THEN
            EXECUTE format('ALTER ROUTINE %s SECURITY DEFINER SET search_path = pg_catalog, pg_temp', v_fn.sig);
            EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I', v_fn.sig, v_writer);
        ELSIF v_fn.class = 'unknown' THEN
            RAISE NOTICE 'function % is not classified as reading or writing: only its owner may execute it', v_fn.sig;
        END IF;
    END LOOP;
END
$roles$;
