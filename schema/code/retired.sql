{{- $s := .schema | default "es" -}}
-- es: the forms of functions that a later version changed or removed. Each
-- is dropped before the package creates the current ones, so that
-- installing the package upgrades a schema built by an earlier version.
-- (None yet: nothing has been released.)
