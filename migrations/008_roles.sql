{{- $s := .schema | default "es" -}}
-- es: roles (placeholder, filled in by the issue that owns it). sql/roles.sql holds
-- the same definitions for schema es.
SELECT 1;

---- create above / drop below ----
{{- $s := .schema | default "es" }}

SELECT 1;
