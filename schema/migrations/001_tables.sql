{{- $s := .schema | default "es" -}}
-- es: the tables. The schema name is the tern template variable "schema"
-- (default "es").
--
-- Migrations hold the tables and their data, and are never edited once
-- released: a change is a new migration. Functions, views, triggers and
-- privileges live in the code package in sql/, which is installed again
-- after the migrations (pgstore.Migrate does both in one transaction).

-- Resolve every name in pg_catalog (see the code package's install.sql).
SET LOCAL search_path = pg_catalog, pg_temp;

CREATE SCHEMA IF NOT EXISTS {{ $s }};

-- One row per stream. version = number of events (0 = none); transaction_id
-- is the stream's latest transaction key (see the events table).
CREATE TABLE {{ $s }}.streams (
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    transaction_id xid8        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT streams_pkey PRIMARY KEY (stream_id),
    CONSTRAINT streams_stream_id_check CHECK (octet_length(stream_id) BETWEEN 1 AND 1000),
    CONSTRAINT streams_version_check CHECK (version >= 0)
) WITH (fillfactor = 50);
-- Every append updates its stream's row; the free space on each page lets
-- those updates stay on the page (HOT: no index insert), since they change
-- no indexed column.

-- The events, immutable. The global order is (transaction_id,
-- global_position), where transaction_id is the transaction key
-- k = greatest(pg_current_xact_id(), the stream's previous k).
CREATE TABLE {{ $s }}.events (
    global_position bigint      GENERATED ALWAYS AS IDENTITY,
    transaction_id  xid8        NOT NULL,
    stream_id       text        NOT NULL,
    version         bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    data            bytea       NOT NULL,
    metadata        bytea,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    category        text        GENERATED ALWAYS AS (split_part(stream_id, '-', 1)) STORED,
    CONSTRAINT events_pkey PRIMARY KEY (transaction_id, global_position),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_version_check CHECK (version >= 1),
    CONSTRAINT events_event_type_check CHECK (event_type <> '')
);

CREATE INDEX events_category_idx ON {{ $s }}.events (category, transaction_id, global_position);

-- The newest snapshot per stream.
CREATE TABLE {{ $s }}.snapshots (
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    schema_version int         NOT NULL,
    state          bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id),
    CONSTRAINT snapshots_version_check CHECK (version >= 1)
);

-- One row per named subscription: the position it has processed up to.
CREATE TABLE {{ $s }}.checkpoints (
    subscription_id text        NOT NULL,
    transaction_id  xid8        NOT NULL DEFAULT '0',
    global_position bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkpoints_pkey PRIMARY KEY (subscription_id),
    CONSTRAINT checkpoints_subscription_id_check CHECK (subscription_id <> '')
);

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

-- Removes everything es installed in the schema (the code package's
-- functions and views included), but not the schema itself, which holds
-- tern's version table when pgstore.Migrate ran. The schema's roles are
-- dropped unless something else still uses them (privileges in another
-- database that installed schema {{ $s }}, or members: logins they were
-- granted to), in which case they are kept with a notice.
DO $down$
DECLARE
    v_schema CONSTANT text := '{{ $s }}';
    v_role   text;
    v_obj    record;
BEGIN
    FOR v_obj IN
        SELECT format('%I.%I', v_schema, c.relname) AS name
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = v_schema::pg_catalog.regnamespace AND c.relkind = 'v'
    LOOP
        EXECUTE format('DROP VIEW IF EXISTS %s CASCADE', v_obj.name);
    END LOOP;
    DROP TABLE {{ $s }}.checkpoints, {{ $s }}.snapshots, {{ $s }}.events, {{ $s }}.streams;
    FOR v_obj IN
        SELECT format('%I.%I(%s)', v_schema, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)) AS sig
          FROM pg_catalog.pg_proc AS p
         WHERE p.pronamespace = v_schema::pg_catalog.regnamespace
    LOOP
        EXECUTE format('DROP ROUTINE %s', v_obj.sig);
    END LOOP;

    FOREACH v_role IN ARRAY ARRAY[v_schema || '_writer', v_schema || '_snapshotter', v_schema || '_reader'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_role);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', v_schema, v_role);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', v_schema, v_role);
        IF EXISTS (SELECT FROM pg_catalog.pg_auth_members AS m WHERE m.roleid = v_role::pg_catalog.regrole) THEN
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
