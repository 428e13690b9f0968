{{- $s := .schema | default "es" -}}
-- es: parked events: events a subscription set aside after its handler
-- kept failing on them (opt-in), and the later events of their streams,
-- parked behind them so that each stream's events are still handled in
-- order. An operator retries or skips them (schema/code/parked.sql).

SET LOCAL search_path = pg_catalog, pg_temp;

CREATE TABLE {{ $s }}.parked_events (
    subscription_id    text        NOT NULL,
    transaction_id     xid8        NOT NULL,
    global_position    bigint      NOT NULL,
    stream_id          text        NOT NULL,
    event_id           uuid        NOT NULL,
    event_type         text        NOT NULL,
    behind             boolean     NOT NULL DEFAULT false,
    error              text,
    attempts           int         NOT NULL DEFAULT 0,
    parked_at          timestamptz NOT NULL DEFAULT now(),
    retry_requested_at timestamptz,
    resolved_at        timestamptz,
    resolution         text,
    CONSTRAINT parked_events_pkey PRIMARY KEY (subscription_id, transaction_id, global_position),
    CONSTRAINT parked_events_resolution_check CHECK (resolution IN ('retried', 'skipped')
                                                     AND resolved_at IS NOT NULL
                                                     OR resolution IS NULL AND resolved_at IS NULL)
);

-- The unresolved ones, by subscription and stream: what a subscription
-- loads when it starts, and what blocks a stream.
CREATE INDEX parked_events_unresolved_idx ON {{ $s }}.parked_events (subscription_id, stream_id, transaction_id, global_position)
    WHERE resolved_at IS NULL;

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

DROP TABLE {{ $s }}.parked_events;
