{{- $s := .schema | default "es" -}}
-- es: the forms of functions that a later version changed or removed. Each
-- is dropped before the package creates the current ones, so that
-- installing the package upgrades a schema built by an earlier version.

-- transaction_key(): append computes its key in one statement.
DROP FUNCTION IF EXISTS {{ $s }}.transaction_key();

-- log_behind(xid8, bigint, text[], text[]): it also counts a consumer
-- group's partition now.
DROP FUNCTION IF EXISTS {{ $s }}.log_behind(xid8, bigint, text[], text[]);

-- append, append_event and append_json take each event's schema version
-- now (a trailing argument with a default, so calls without it still
-- work; the old forms would make those calls ambiguous).
DROP FUNCTION IF EXISTS {{ $s }}.append(text, bigint, uuid[], text[], bytea[], bytea[]);
DROP FUNCTION IF EXISTS {{ $s }}.append(text, bigint, uuid[], text[], bytea[], bytea[], int, bytea);
DROP FUNCTION IF EXISTS {{ $s }}.append_event(text, text, bytea, bytea, bigint, uuid);
DROP FUNCTION IF EXISTS {{ $s }}.append_json(text, text, jsonb, jsonb, bigint, uuid);

-- archive_events takes the size of the archive's new partitions now (a
-- trailing argument with a default).
DROP FUNCTION IF EXISTS {{ $s }}.archive_events(xid8, bigint, int);

-- The functions that return event rows return schema_version too: the
-- forms without it are dropped (their arguments are unchanged, so only a
-- result without the column tells them apart; CREATE OR REPLACE cannot
-- change a result type).
DO $retired$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc AS p
         WHERE p.oid IN (pg_catalog.to_regprocedure('{{ $s }}.read_stream(text, bigint, int)'),
                         pg_catalog.to_regprocedure('{{ $s }}.read_stream_backward(text, bigint, int)'),
                         pg_catalog.to_regprocedure('{{ $s }}.read_all(xid8, bigint, int, text[], text[])'),
                         pg_catalog.to_regprocedure('{{ $s }}.read_partition(xid8, bigint, int, int, int, text[], text[])'),
                         pg_catalog.to_regprocedure('{{ $s }}.read_partitions(xid8, bigint, int, int[], int, text[], text[])'),
                         pg_catalog.to_regprocedure('{{ $s }}.load(text, int)'))
           AND NOT 'schema_version' = ANY (p.proargnames)
    LOOP
        EXECUTE format('DROP FUNCTION %s', v_fn);
    END LOOP;
END
$retired$;

-- subscription_health returns where the instance reads from and its
-- replica's lag (reads_from, replica_lag) now: the form without them is
-- dropped, with subscriptions_view, which selects its columns (health.sql
-- creates both again).
DO $retired$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_proc AS p
                WHERE p.oid = pg_catalog.to_regprocedure('{{ $s }}.subscription_health(text, interval)')
                  AND NOT 'replica_lag' = ANY (p.proargnames)) THEN
        DROP VIEW IF EXISTS {{ $s }}.subscriptions_view;
        DROP FUNCTION {{ $s }}.subscription_health(text, interval);
    END IF;
END
$retired$;
