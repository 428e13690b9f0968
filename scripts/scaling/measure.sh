#!/usr/bin/env bash
# measure.sh LABEL: one measurement of the current log (see README.md):
# sizes, reads, then appends, with the server's normal durability
# settings. Writes LABEL.txt (summary) and LABEL-explain.txt here and the
# pgbench logs under $OUT.
set -euo pipefail
: "${PGURL:=host=/tmp/scale port=5499 user=postgres dbname=scale}"
label=$1
T=${T:-20}    # seconds per append run
RT=${RT:-10}  # seconds per read run
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/scale/results}/$label
mkdir -p "$OUT"
sum=$here/results/$label.txt
exp=$here/results/$label-explain.txt
mkdir -p "$here/results"
: >"$sum"; : >"$exp"
psql() { command psql "$PGURL" -X -v ON_ERROR_STOP=1 -qAt "$@"; }
say() { echo "$*" | tee -a "$sum"; }

# Durability must be the server's normal one: fsync and synchronous_commit on.
[ "$(psql -c 'SHOW fsync')" = on ] && [ "$(psql -c 'SHOW synchronous_commit')" = on ] && [ "$(psql -c 'SHOW full_page_writes')" = on ] ||
  { echo "fsync or synchronous_commit is off" >&2; exit 1; }
psql -c "CREATE EXTENSION IF NOT EXISTS pageinspect"

say "# $label, $(date -u +'%F %T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "settings: $(psql -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_wal_size', 'wal_level')")"
events=$(psql -c "SELECT max(global_position) FROM es.events")
loaded=$(psql -c "SELECT max(loaded) FROM public.scaling_load")
say "events: $events (bulk-loaded $loaded), streams: $(psql -c 'SELECT count(*) FROM es.streams')"

say ""
say "## sizes (bytes; per event = / $events)"
psql -F ' | ' <<SQL | tee -a "$sum"
SELECT 'events heap', pg_relation_size('es.events'), round(pg_relation_size('es.events')::numeric / $events, 1), ''
UNION ALL
SELECT 'events toast', pg_table_size('es.events') - pg_relation_size('es.events')
       - pg_relation_size('es.events', 'fsm') - pg_relation_size('es.events', 'vm'), NULL, ''
UNION ALL
SELECT 'events indexes', pg_indexes_size('es.events'), round(pg_indexes_size('es.events')::numeric / $events, 1), ''
UNION ALL
SELECT ' ' || c.relname, pg_relation_size(c.oid), round(pg_relation_size(c.oid)::numeric / $events, 1),
       'btree levels ' || (SELECT m.level + 1 FROM bt_metap('es.' || c.relname) AS m)
  FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'es.events'::regclass
UNION ALL
SELECT 'events total', pg_total_relation_size('es.events'), round(pg_total_relation_size('es.events')::numeric / $events, 1), ''
UNION ALL
SELECT 'streams total', pg_total_relation_size('es.streams'), NULL, 'indexes ' || pg_indexes_size('es.streams')
UNION ALL
SELECT 'database', pg_database_size(current_database()), NULL, '';
SQL
say "disk free: $(df -h --output=avail /tmp | tail -1)"

# The parameters of the read scripts.
smax=$(( loaded / 1000 / 1000 - 1 ))               # complete 1,000-event streams per lane: 0..smax
kmin=$(psql -c "SELECT min(transaction_id)::text FROM es.events")
kend=$(psql -c "SELECT max(transaction_id)::text::bigint FROM es.events")
kmax=$(( kend - 2000 ))
kmid=$(psql -c "SELECT e.transaction_id::text AS k FROM es.events AS e WHERE e.transaction_id >= '$(( (kmin + kend) / 2 ))'::xid8 ORDER BY e.transaction_id, e.global_position LIMIT 1")
vars=(-D smax=$smax -D kmin=$kmin -D kmax=$kmax -D sid=order-bench$label)

# run NAME CLIENTS SCRIPT [pgbench args]: one pgbench run; prints tps, p50, p99 (ms), WAL bytes per transaction.
run() {
  local name=$1 clients=$2 script=$3; shift 3
  local lsn0 lsn1 n
  rm -f "$OUT/$name".[0-9]*
  lsn0=$(psql -c "SELECT pg_current_wal_lsn()")
  pgbench "$PGURL" -n -M prepared -c "$clients" -j "$(( clients < 2 ? clients : 2 ))" \
    -l --log-prefix="$OUT/$name" "${vars[@]}" "$@" -f "$here/$script" >"$OUT/$name.out" 2>&1 ||
    { cat "$OUT/$name.out" >&2; return 1; }
  lsn1=$(psql -c "SELECT pg_current_wal_lsn()")
  n=$(cat "$OUT/$name".[0-9]* | wc -l)
  cat "$OUT/$name".[0-9]* | awk '{print $3}' | sort -n >"$OUT/$name.lat"
  printf '%-22s clients %d  calls %7d  %9.1f calls/s  p50 %7.2f ms  p99 %7.2f ms  WAL %7.0f B/call  load %s\n' \
    "$name" "$clients" "$n" "$(grep -o 'tps = [0-9.]*' "$OUT/$name.out" | head -1 | cut -d' ' -f3)" \
    "$(awk -v n="$n" 'NR==int(n*0.50)+1{print $1/1000}' "$OUT/$name.lat")" \
    "$(awk -v n="$n" 'NR==int(n*0.99)+1{print $1/1000}' "$OUT/$name.lat")" \
    "$(psql -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0') / $n")" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$sum"
}

# explain TITLE SQL: EXPLAIN (ANALYZE, BUFFERS) once, into the explain file.
explain() {
  { echo "== $1"; psql -c "EXPLAIN (ANALYZE, BUFFERS) $2"; echo; } >>"$exp"
}

# A stream in the middle of the log (lane 3, stream smax/2) and one near its end.
mid_stream="invoice-0003-$(( smax / 2 ))"
new_stream="invoice-0003-$smax"
explain "read_stream $mid_stream (first call)" "SELECT * FROM es.read_stream('$mid_stream', 1, NULL)"
explain "read_stream $mid_stream (again)" "SELECT * FROM es.read_stream('$mid_stream', 1, NULL)"
explain "load $new_stream" "SELECT * FROM es.load('$new_stream', NULL)"
explain "read_all after $kmid (middle)" "SELECT * FROM es.read_all('$kmid', 0, 1000)"
explain "read_all after $kmax (end)" "SELECT * FROM es.read_all('$kmax', 0, 1000)"
explain "read_all category invoice after $kmid" "SELECT * FROM es.read_all('$kmid', 0, 1000, ARRAY['invoice'])"
explain "log_end" "SELECT * FROM es.log_end()"
explain "stream_info $mid_stream" "SELECT * FROM es.stream_info('$mid_stream')"

say ""
say "## reads (1 client, ${RT} s each; smax=$smax kmin=$kmin kmid=$kmid kmax=$kmax)"
run read_stream_random 1 read_stream.pgbench -T $RT
run load_random        1 load.pgbench -T $RT
run stream_info_random 1 stream_info.pgbench -T $RT
run read_all_random    1 read_all_random.pgbench -T $RT
run read_all_middle    1 read_all_at.pgbench -T $RT -D k=$kmid
run read_all_end       1 read_all_at.pgbench -T $RT -D k=$kmax
run read_all_category  1 read_all_category.pgbench -T $RT
run log_end            1 log_end.pgbench -T $RT

say ""
say "## appends (${T} s each, batches of 100: 500 calls, 8 x 100 calls; events/s = calls/s x events per call)"
run append1_v7_c1      1 append1_v7.pgbench -T $T
run append1_v7_c8      8 append1_v7.pgbench -T $T
run append1_random_c1  1 append1_random.pgbench -T $T
run append1_random_c8  8 append1_random.pgbench -T $T
run append100_v7_c1    1 append100_v7.pgbench -t 500
run append100_v7_c8    8 append100_v7.pgbench -t 100
say ""
say "$(date -u +'%T UTC') done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
