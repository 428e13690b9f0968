{{- $s := .schema | default "es" -}}
-- es: roles and privileges.
--
-- Four NOLOGIN roles (six with migration 007), named after the schema; grant them to the logins of
-- applications and people (GRANT {{ $s }}_writer TO app):
--   {{ $s }}_reader: USAGE on the schema, SELECT on its tables and views,
--       EXECUTE on the read functions (read_stream, read_stream_backward,
--       read_all, read_partition, read_partitions, stream_partition, stream_info, load,
--       read_checkpoint, log_end, log_hidden,
--       subscription_health, horizon_holders,
--       the msgpack decoders and the helpers they call);
--   {{ $s }}_writer: everything the reader has (granted directly, not
--       through membership) and EXECUTE on the functions that append and
--       follow the log (append, append_event, advance_checkpoint,
--       delete_checkpoint, reset_checkpoint, acquire_lease, renew_lease,
--       release_lease, report_status, report_replica, park_event, parked_retried,
--       retry_parked, skip_parked, join_group, leave_group,
--       take_partition, soft_delete_stream, restore_stream);
--   {{ $s }}_admin: EXECUTE on the functions that remove events for good
--       or set what is removed (tombstone_stream, truncate_stream,
--       set_stream_retention, set_category_retention, apply_retention;
--       lifecycle.sql; archive_events, detach_archive_partition,
--       archive.sql), and USAGE on the
--       schema. Nothing else: grant it
--       to the operators' logins beside {{ $s }}_reader or _writer;
--   {{ $s }}_snapshotter: EXECUTE on the functions that store snapshots
--       (save_snapshot, and append with a snapshot). A snapshot is trusted
--       input: loads start from it instead of replaying the events before
--       it, so whoever may store one may make an aggregate's state
--       contradict its events. When the role is created, it is granted to
--       {{ $s }}_writer, so writers store snapshots by default; REVOKE
--       {{ $s }}_snapshotter FROM {{ $s }}_writer and grant it to the logins
--       you trust with it instead (installing the package again does not
--       grant it back).
-- Two more once migration 007 (subject_keys) is applied:
--   {{ $s }}_keyholder: EXECUTE on subject_key, which returns (and
--       creates) the keys of data subjects: whoever holds it can decrypt
--       personal fields. Granted to {{ $s }}_writer when created, as the
--       snapshotter is (an application encrypts what it writes and
--       decrypts what it reads); never to {{ $s }}_reader. Nobody but the
--       owner can SELECT subject_keys.
--   {{ $s }}_forgetter: EXECUTE on forget_subject, which deletes a
--       subject's key for good. Granted to nobody: grant it to the logins
--       that may forget (GRANT {{ $s }}_forgetter TO dpo).
-- Nobody but the owner (the role that ran the installation) has INSERT,
-- UPDATE, DELETE or TRUNCATE on any table: the writing functions are
-- SECURITY DEFINER, run as the owner, and pin search_path to pg_catalog,
-- pg_temp (their bodies name every object of the schema in full), so a
-- caller's search_path cannot redirect them. EXECUTE is revoked from
-- PUBLIC on every function of the schema. UPDATE, DELETE and TRUNCATE on
-- events are refused to everyone, the owner included, by the triggers of
-- immutability.sql.
--
-- Functions are classified below by name and number of arguments. Trigger
-- functions, the internal functions (only the owner's functions call
-- them) and any function this file does not know get no grants: only the
-- owner may execute them (a notice names an unknown one;
-- integration_test/roles_test.go fails on it).
--
-- Roles are cluster-wide: every database that installs schema {{ $s }} uses
-- the same roles (a login granted {{ $s }}_reader can read schema {{ $s }}
-- in every such database it may connect to; install under different schema
-- names to keep them apart). They are created when missing. Creating a role
-- needs CREATEROLE: when the installing user lacks it and the roles do not
-- exist, the installation fails (SQLSTATE 42501, nothing applied) with a
-- hint: have an administrator create the roles (CREATE ROLE
-- {{ $s }}_reader NOLOGIN; CREATE ROLE {{ $s }}_writer NOLOGIN; CREATE
-- ROLE {{ $s }}_snapshotter NOLOGIN IN ROLE ... see the hint), then install
-- again; granting privileges on its own objects needs nothing more. (Before
-- migration 007 the keyholder and forgetter roles are not needed: the
-- installation neither creates nor grants them.)
-- (Going on without the roles would leave every function to the owner
-- alone, silently: the installation refuses instead.)
DO $roles$
DECLARE
    v_schema      CONSTANT text := '{{ $s }}';
    v_reader      CONSTANT text := '{{ $s }}_reader';
    v_writer      CONSTANT text := '{{ $s }}_writer';
    v_snapshotter CONSTANT text := '{{ $s }}_snapshotter';
    v_admin       CONSTANT text := '{{ $s }}_admin';
    v_keyholder   CONSTANT text := '{{ $s }}_keyholder';
    v_forgetter   CONSTANT text := '{{ $s }}_forgetter';
    -- Migration 007 applied: the keyholder and forgetter roles are used.
    v_subjects    CONSTANT boolean := pg_catalog.to_regclass(pg_catalog.format('%I.subject_keys', '{{ $s }}')) IS NOT NULL;
    -- name/number of arguments
    v_read_fns    CONSTANT text[] := ARRAY['read_stream/3', 'read_stream_backward/3', 'read_all/5', 'stream_info/1',
                                           'load/2', 'read_checkpoint/1', 'log_end/0', 'log_hidden/2', 'log_behind/6', 'log_horizon/0',
                                           'keys_behind/2', 'msgpack_to_jsonb/1', 'try_msgpack_to_jsonb/1',
                                           'jsonb_to_msgpack/1', 'msgpack_str_header/1', 'msgpack_number/1',
                                           'msgpack_float_text/2', 'invalid_argument/4', 'lease_live/2',
                                           'subscription_running/1', 'subscription_health/2', 'subscription_ids/0',
                                           'horizon_holders/0', 'stream_partition/2', 'read_partition/7',
                                           'read_partitions/7', 'stream_visible_from/1', 'log_max_key/0',
                                           'archive_partitions/0', 'archive_bounds/0'];
    v_write_fns   CONSTANT text[] := ARRAY['append/7', 'append_event/7', 'append_json/7', 'advance_checkpoint/5', 'delete_checkpoint/1',
                                           'reset_checkpoint/3', 'acquire_lease/3', 'renew_lease/3', 'release_lease/2',
                                           'report_status/7', 'report_replica/4', 'park_event/10', 'parked_retried/6', 'retry_parked/3',
                                           'skip_parked/3', 'join_group/4', 'leave_group/2', 'take_partition/6',
                                           'soft_delete_stream/2', 'restore_stream/1'];
    v_admin_fns   CONSTANT text[] := ARRAY['tombstone_stream/2', 'truncate_stream/2', 'set_stream_retention/3',
                                           'set_category_retention/3', 'apply_retention/2', 'archive_events/4',
                                           'detach_archive_partition/2'];
    v_snap_fns    CONSTANT text[] := ARRAY['save_snapshot/4', 'append/9'];
    v_key_fns     CONSTANT text[] := ARRAY['subject_key/2'];
    v_forget_fns  CONSTANT text[] := ARRAY['forget_subject/1'];
    v_owner_fns   CONSTANT text[] := ARRAY['raise_key_base/0', 'store_snapshot/4',
                                           'check_lease_arguments/4', 'check_checkpoint_position/3',
                                           'refuse_while_running/2', 'holds_lease/2',
                                           'check_group_arguments/5', 'group_partitions_held/2',
                                           'check_stream_argument/2', 'lock_stream/3', 'raise_stream_deleted/3',
                                           'raise_stream_not_found/2', 'remove_events/3', 'check_retention_rule/3',
                                           'note_removed/3', 'cover_archive/2', 'protect_archive_table/1',
                                           'archive_removal_lock/0'];
    v_roles       text[] := ARRAY[v_reader, v_writer, v_snapshotter, v_admin];
    v_role        text;
    v_fn          record;
BEGIN
    IF v_subjects THEN
        v_roles := v_roles || ARRAY[v_keyholder, v_forgetter];
    END IF;
    FOREACH v_role IN ARRAY v_roles LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_role);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
            IF v_role IN (v_snapshotter, v_keyholder) THEN
                -- Only when created: an administrator who revoked it
                -- from the writers keeps it revoked.
                EXECUTE format('GRANT %I TO %I', v_role, v_writer);
            END IF;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL; -- another database's installation created it meanwhile
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'cannot create role %: the installing user % lacks CREATEROLE', v_role, current_user
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = format('Have an administrator run CREATE ROLE %I NOLOGIN; CREATE ROLE %I NOLOGIN; '
                                        'CREATE ROLE %I NOLOGIN; GRANT %I TO %I; CREATE ROLE %I NOLOGIN; '
                                        'CREATE ROLE %I NOLOGIN; GRANT %I TO %I; CREATE ROLE %I NOLOGIN; then install again.',
                                        v_reader, v_writer, v_snapshotter, v_snapshotter, v_writer, v_admin,
                                        v_keyholder, v_keyholder, v_writer, v_forgetter);
        END;
    END LOOP;

    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I, %I, %I, %I', v_schema, v_reader, v_writer, v_snapshotter, v_admin);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC', v_schema);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I, %I', v_schema, v_reader, v_writer);
    -- But not on the archive's partitions (migration 010; readers read
    -- them through events_archive, whose privileges PostgreSQL checks),
    -- nor on a partition detached from it (detach_archive_partition): its
    -- events are removed from the log, the table is left to the owner to
    -- dump and drop. Both are named events_archive_<first key>.
    FOR v_fn IN
        SELECT c.oid::pg_catalog.regclass AS tbl
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = v_schema::pg_catalog.regnamespace AND c.relkind = 'r'
           AND c.relname ~ '^events_archive_[0-9]+$'
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %I, %I', v_fn.tbl, v_reader, v_writer);
    END LOOP;
    IF v_subjects THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I, %I', v_schema, v_keyholder, v_forgetter);
        -- The keys: the owner's alone (subject_key hands them out).
        EXECUTE format('REVOKE ALL ON %I.subject_keys FROM %I, %I', v_schema, v_reader, v_writer);
    END IF;

    FOR v_fn IN
        SELECT format('%I.%I(%s)', v_schema, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)) AS sig,
               CASE WHEN p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype THEN 'trigger'
                    WHEN p.proname || '/' || p.pronargs = ANY (v_write_fns) THEN 'write'
                    WHEN p.proname || '/' || p.pronargs = ANY (v_snap_fns) THEN 'snapshot'
                    WHEN p.proname || '/' || p.pronargs = ANY (v_admin_fns) THEN 'admin'
                    WHEN p.proname || '/' || p.pronargs = ANY (v_read_fns) THEN 'read'
                    WHEN p.proname || '/' || p.pronargs = ANY (v_owner_fns) THEN 'owner'
                    WHEN p.proname || '/' || p.pronargs = ANY (v_key_fns) THEN 'keys'
                    WHEN p.proname || '/' || p.pronargs = ANY (v_forget_fns) THEN 'forget'
                    ELSE 'unknown' END AS class
          FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = v_schema::pg_catalog.regnamespace AND p.prokind IN ('f', 'p')
         ORDER BY p.oid
    LOOP
        EXECUTE format('REVOKE ALL ON ROUTINE %s FROM PUBLIC, %I, %I, %I, %I', v_fn.sig, v_reader, v_writer, v_snapshotter, v_admin);
        IF v_subjects THEN
            EXECUTE format('REVOKE ALL ON ROUTINE %s FROM %I, %I', v_fn.sig, v_keyholder, v_forgetter);
        END IF;
        IF v_fn.class = 'read' THEN
            EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I, %I', v_fn.sig, v_reader, v_writer);
        ELSIF v_fn.class = 'write' THEN
            EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I', v_fn.sig, v_writer);
        ELSIF v_fn.class = 'snapshot' THEN
            EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I', v_fn.sig, v_snapshotter);
        ELSIF v_fn.class = 'admin' THEN
            EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I', v_fn.sig, v_admin);
        ELSIF v_fn.class = 'keys' AND v_subjects THEN
            EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I', v_fn.sig, v_keyholder);
        ELSIF v_fn.class = 'forget' AND v_subjects THEN
            EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %I', v_fn.sig, v_forgetter);
        ELSIF v_fn.class = 'unknown' THEN
            RAISE NOTICE 'function % is not classified: only its owner may execute it', v_fn.sig;
        END IF;
    END LOOP;
END
$roles$;
