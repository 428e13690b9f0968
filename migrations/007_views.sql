{{- $s := .schema | default "es" -}}
-- es: views (placeholder, filled in by the issue that owns it). sql/views.sql holds
-- the same definitions for schema es.
SELECT 1;

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SELECT 1;
