{{- $s := .schema | default "es" -}}
-- es: checkpoint (placeholder, filled in by the issue that owns it). sql/checkpoint.sql holds
-- the same definitions for schema es.
SELECT 1;

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SELECT 1;
