{{- $s := .schema | default "es" -}}
-- es: the forms of functions that a later version changed or removed. Each
-- is dropped before the package creates the current ones, so that
-- installing the package upgrades a schema built by an earlier version.

-- transaction_key(): append computes its key in one statement.
DROP FUNCTION IF EXISTS {{ $s }}.transaction_key();

-- log_behind(xid8, bigint, text[], text[]): it also counts a consumer
-- group's partition now.
DROP FUNCTION IF EXISTS {{ $s }}.log_behind(xid8, bigint, text[], text[]);
