#!/usr/bin/env bash
# load.sh N: grows the synthetic log in es.events to N bulk-loaded events (the
# events appended by measure.sh come on top), in chunks of one transaction
# each, then brings es.streams up to date and vacuums. See README.md.
#
# NOINDEX=1: drop the four indexes of es.events for the load and build them
# afterwards: (stream_id, version) and (category, ...), which appends grow at
# many insertion points, at the leaf density they had before the load
# (pgstatindex), so that they are as large as the ones appends grow; the
# two that grow at their right end at 90. Faster on a busy machine; used
# for 100M.
set -euo pipefail
: "${PGURL:=host=/tmp/scale port=5499 user=postgres dbname=scale}"
target=$1
chunk=${CHUNK:-1000000}
lanes=${LANES:-1000}
here=$(cd "$(dirname "$0")" && pwd)
psql() { command psql "$PGURL" -X -v ON_ERROR_STOP=1 -qAt "$@"; }

psql -c "CREATE TABLE IF NOT EXISTS public.scaling_load (loaded bigint NOT NULL, kbase bigint NOT NULL, p0 bigint NOT NULL)"
loaded=$(psql -c "SELECT coalesce(max(loaded), 0) FROM public.scaling_load")
[ "$loaded" -ge "$target" ] && { echo "already $loaded"; exit 0; }
# Keys continue above every key in the log (the first append afterwards
# raises the key base, as after a restore: keys.sql).
kmax=$(psql -c "SELECT coalesce(max(transaction_id)::text::bigint, 0) FROM es.events")
kbase=$((kmax + 1000 - loaded))
p0=$(psql -c "SELECT coalesce(max(global_position), 0) FROM es.events")
# The load only: no fsync, no full-page writes (restored below, before any
# measurement; measure.sh checks).
psql -c "ALTER SYSTEM SET fsync = off" -c "ALTER SYSTEM SET full_page_writes = off" -c "SELECT pg_reload_conf()" >/dev/null
trap 'psql -c "ALTER SYSTEM RESET fsync" -c "ALTER SYSTEM RESET full_page_writes" -c "SELECT pg_reload_conf()" >/dev/null' EXIT
if [ -n "${NOINDEX:-}" ]; then
  psql -c "CREATE EXTENSION IF NOT EXISTS pgstattuple"
  # name|definition|fillfactor, from the indexes as appends left them.
  # The primary key and event_id (UUIDv7) indexes grow at their right end,
  # where PostgreSQL splits pages at 90%: they are built at 90 (random ids
  # would leave event_id nearer 50-70%).
  psql -F'|' -c "SELECT c.relname, pg_get_indexdef(c.oid),
                        CASE WHEN c.relname IN ('events_pkey', 'events_event_id_key') THEN 90
                             ELSE greatest(10, least(100, round((pgstatindex(c.oid)).avg_leaf_density)))::int END
                   FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
                  WHERE i.indrelid = 'es.events'::regclass" >"$here/results/indexes-before-$target.txt"
  cat "$here/results/indexes-before-$target.txt"
  psql -c "ALTER TABLE es.events DROP CONSTRAINT events_pkey, DROP CONSTRAINT events_stream_version_key,
                                 DROP CONSTRAINT events_event_id_key" -c "DROP INDEX es.events_category_idx"
fi
start=$(date +%s)
g=$loaded
while [ "$g" -lt "$target" ]; do
  g1=$((g + chunk)); [ "$g1" -gt "$target" ] && g1=$target
  psql -v g0="$g" -v g1="$g1" -v kbase="$kbase" -v lanes="$lanes" -f "$here/load.sql"
  g=$g1
  echo "$(date +%T) loaded $g events ($(( (g - loaded) / ($(date +%s) - start + 1) )) events/s), $(df -h --output=avail /tmp | tail -1) free"
done
if [ -n "${NOINDEX:-}" ]; then
  echo "$(date +%T) building the indexes"
  psql -c "SET maintenance_work_mem = '2GB'" \
       -c "CREATE UNIQUE INDEX events_pkey ON es.events (transaction_id, global_position) WITH (fillfactor = $(awk -F'|' '$1=="events_pkey"{print $3}' "$here/results/indexes-before-$target.txt"))" \
       -c "ALTER TABLE es.events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_pkey"
  echo "$(date +%T) pkey built"
  psql -c "SET maintenance_work_mem = '2GB'" \
       -c "CREATE UNIQUE INDEX events_stream_version_key ON es.events (stream_id, version) WITH (fillfactor = $(awk -F'|' '$1=="events_stream_version_key"{print $3}' "$here/results/indexes-before-$target.txt"))" \
       -c "ALTER TABLE es.events ADD CONSTRAINT events_stream_version_key UNIQUE USING INDEX events_stream_version_key"
  echo "$(date +%T) stream_version built"
  psql -c "SET maintenance_work_mem = '2GB'" \
       -c "CREATE UNIQUE INDEX events_event_id_key ON es.events (event_id) WITH (fillfactor = $(awk -F'|' '$1=="events_event_id_key"{print $3}' "$here/results/indexes-before-$target.txt"))" \
       -c "ALTER TABLE es.events ADD CONSTRAINT events_event_id_key UNIQUE USING INDEX events_event_id_key"
  echo "$(date +%T) event_id built"
  psql -c "SET maintenance_work_mem = '2GB'" \
       -c "CREATE INDEX events_category_idx ON es.events (category, transaction_id, global_position) WITH (fillfactor = $(awk -F'|' '$1=="events_category_idx"{print $3}' "$here/results/indexes-before-$target.txt"))"
  echo "$(date +%T) category built"
fi
# The streams rows: what append leaves in them (version = number of events,
# transaction_id = the key of the stream's last append, created_at = its
# first event's time, updated_at = its last's).
psql <<SQL
SET synchronous_commit = off;
INSERT INTO es.streams AS s (stream_id, version, transaction_id, created_at, updated_at)
SELECT e.stream_id, max(e.version), max(e.transaction_id), min(e.recorded_at), max(e.recorded_at)
  FROM es.events AS e
 WHERE e.global_position > $p0
 GROUP BY e.stream_id
    ON CONFLICT (stream_id) DO UPDATE
   SET version = excluded.version, transaction_id = excluded.transaction_id, updated_at = excluded.updated_at;
INSERT INTO public.scaling_load VALUES ($target, $kbase, $p0);
SQL
psql -c "VACUUM (ANALYZE) es.events" -c "VACUUM (ANALYZE) es.streams"
psql -c "ALTER SYSTEM RESET fsync" -c "ALTER SYSTEM RESET full_page_writes" -c "SELECT pg_reload_conf()" >/dev/null
sync
psql -c "CHECKPOINT"
echo "$(date +%T) done: $target events in $(( $(date +%s) - start )) s"
