{{- $s := .schema | default "es" -}}
-- es: where a subscription reads the log from. A subscription may read from
-- a hot standby (pgstore.SubscriptionConfig.ReadReplicas) while its
-- checkpoint and lease stay on the primary; its active instance reports the
-- server it reads from and how far that standby's replay is behind the
-- primary's log, and subscription_health shows both (health.sql,
-- report_replica).

SET LOCAL search_path = pg_catalog, pg_temp;

-- Nullable columns without defaults: adding them rewrites nothing.
ALTER TABLE {{ $s }}.subscription_status
    ADD COLUMN reads_from  text,
    ADD COLUMN replica_lag interval;

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SET LOCAL search_path = pg_catalog, pg_temp;

-- subscription_health reads the columns only when they exist (health.sql).
ALTER TABLE {{ $s }}.subscription_status
    DROP COLUMN reads_from,
    DROP COLUMN replica_lag;
