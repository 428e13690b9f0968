{{- /*
es: the code package. Everything in the schema that is not a table lives
here: functions, triggers, views, roles and privileges, one file per
concern, each object defined in exactly one file. It is a tern code
package: the files are Go templates with the variable "schema" (default
"es"), and install.sql (this file) includes them in dependency order. Every
statement can run again: installing the package over an installed schema
replaces each object in place (CREATE OR REPLACE), so dependent objects
such as a user's expression index on msgpack_to_jsonb survive.

Install it after the migrations (which create the tables):
    tern migrate -m schema/migrations --config es.conf
    tern code install schema/code --config es.conf
pgstore.Migrate runs both, embedded, in one transaction.
`tern code compile schema/code` prints the SQL, e.g. to read it or to run it
with psql.

A change to a function's arguments or result type must drop the old form
first: add its DROP FUNCTION IF EXISTS to retired.sql.
*/ -}}
-- Everything below names the schema's objects in full and resolves the
-- rest in pg_catalog only: nothing another login put in public (or a
-- search_path of the installing session) is run or used while installing.
SET LOCAL search_path = pg_catalog, pg_temp;
{{ template "retired.sql" . }}
{{ template "immutability.sql" . }}
{{ template "lifecycle.sql" . }}
{{ template "archive.sql" . }}
{{ template "keys.sql" . }}
{{ template "read.sql" . }}
{{ template "append.sql" . }}
{{ template "decode.sql" . }}
{{ template "encode.sql" . }}
{{ template "snapshot.sql" . }}
{{ template "checkpoint.sql" . }}
{{ template "leases.sql" . }}
{{ template "groups.sql" . }}
{{ template "health.sql" . }}
{{ template "parked.sql" . }}
{{ template "subjects.sql" . }}
{{ template "views.sql" . }}
{{ template "roles.sql" . }}
