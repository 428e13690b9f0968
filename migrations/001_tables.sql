{{- $s := .schema | default "es" -}}
-- es: tables. The schema name is the tern template variable "schema"
-- (default "es"). sql/tables.sql holds the same definitions for schema es.

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

-- Events are append-only: UPDATE, DELETE and TRUNCATE are refused.
CREATE FUNCTION {{ $s }}.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % on %.% is not allowed', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'PE005',
              HINT = 'append a compensating event instead';
END
$$;

CREATE TRIGGER events_immutable
    BEFORE UPDATE OR DELETE ON {{ $s }}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {{ $s }}.refuse_event_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON {{ $s }}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {{ $s }}.refuse_event_change();

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

DROP TABLE {{ $s }}.checkpoints;
DROP TABLE {{ $s }}.snapshots;
DROP TABLE {{ $s }}.events;
DROP FUNCTION {{ $s }}.refuse_event_change();
DROP TABLE {{ $s }}.streams;
