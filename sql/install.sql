-- Installs the current es schema (named es) with psql:
--   psql -v ON_ERROR_STOP=1 -f sql/install.sql
-- The tern migrations in migrations/ build the same schema (a test proves
-- it) and can install it under another name.
BEGIN;
\ir tables.sql
\ir append.sql
\ir read.sql
\ir decode.sql
\ir snapshot.sql
\ir checkpoint.sql
\ir views.sql
\ir roles.sql
COMMIT;
