{{- $s := .schema | default "es" -}}
-- es: what each subscription last reported about itself: the state its
-- active instance is in, the error it is retrying or failed on, and the
-- filters it reads with (so that its lag counts only the events it would
-- handle), and while it catches up, its rate in events per second. See
-- schema/code/health.sql.

SET LOCAL search_path = pg_catalog, pg_temp;

CREATE TABLE {{ $s }}.subscription_status (
    subscription_id text        NOT NULL,
    state           text        NOT NULL,
    state_since     timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    categories      text[],
    event_types     text[],
    rate            double precision,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscription_status_pkey PRIMARY KEY (subscription_id),
    CONSTRAINT subscription_status_subscription_id_check CHECK (subscription_id <> ''),
    CONSTRAINT subscription_status_state_check CHECK (state IN ('running', 'retrying', 'failed', 'stopped'))
);

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

DROP TABLE {{ $s }}.subscription_status;
