{{- $s := .schema | default "es" -}}
-- es: the transaction key base, the notification token and subscription
-- leases. See schema/code/keys.sql, append.sql and leases.sql for how the
-- functions use them.

-- Resolve every name in pg_catalog (see the code package's install.sql).
SET LOCAL search_path = pg_catalog, pg_temp;

-- The installation's transaction key base (one row): an event's key is
-- this base plus its transaction's xid. It is raised (never lowered) when
-- the database finds itself in a cluster whose xid counter is behind its
-- keys, e.g. after a pg_dump/pg_restore into a fresh cluster.
CREATE TABLE {{ $s }}.transaction_key_base (
    singleton     boolean     NOT NULL DEFAULT true,
    base          bigint      NOT NULL DEFAULT 0,
    previous_base bigint,
    raised_at     timestamptz,
    CONSTRAINT transaction_key_base_pkey PRIMARY KEY (singleton),
    CONSTRAINT transaction_key_base_singleton_check CHECK (singleton),
    CONSTRAINT transaction_key_base_base_check CHECK (base >= 0)
);
INSERT INTO {{ $s }}.transaction_key_base DEFAULT VALUES;

-- One row whose lock decides which in-flight append notifies listeners
-- (notifications are coalesced). A row lock, not an advisory lock: only
-- the schema's owner (the functions) can take it, so no other login can
-- hold it and silence the notifications.
CREATE TABLE {{ $s }}.notify_token (
    singleton boolean NOT NULL DEFAULT true,
    CONSTRAINT notify_token_pkey PRIMARY KEY (singleton),
    CONSTRAINT notify_token_singleton_check CHECK (singleton)
);
INSERT INTO {{ $s }}.notify_token DEFAULT VALUES;

-- Which instance of a subscription is the active one: a lease held by a
-- holder (a random id per running instance) on a backend (holder_pid),
-- renewed before expires_at. Like the notification token, only the
-- functions write it, so no other login can take or hold a subscription's
-- place.
CREATE TABLE {{ $s }}.subscription_leases (
    subscription_id text        NOT NULL,
    holder          text        NOT NULL,
    holder_pid      int         NOT NULL,
    acquired_at     timestamptz NOT NULL DEFAULT now(),
    renewed_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CONSTRAINT subscription_leases_pkey PRIMARY KEY (subscription_id),
    CONSTRAINT subscription_leases_subscription_id_check CHECK (subscription_id <> ''),
    CONSTRAINT subscription_leases_holder_check CHECK (holder <> '')
);

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

DROP TABLE {{ $s }}.subscription_leases, {{ $s }}.notify_token, {{ $s }}.transaction_key_base;
