#!/usr/bin/env bash
# Generates the benchmark's input data into OUTDIR (see bench/README.md):
#   synth-random.bin           incompressible bytes (AES-CTR keystream)
#   synth-text.txt             compressible text (random phrases, zstd -3 ~5x)
#   pg-spread-1..N.sql         pg_dump -Fp of a database whose updates between dumps
#                              are spread over all rows
#   pg-hot-1..N.sql            the same start, updates hit a hot subset + appends
#   manifest.tsv               series, index, file, bytes, zstd -3 bytes
# It starts its own PostgreSQL 15 in a temporary directory (as user postgres when run
# as root) on a free loopback port, and stops it on exit, whatever happens.
#
# usage: bash bench/make-data.sh OUTDIR DUMP_MB NDUMPS SYNTH_MB
set -euo pipefail

OUT=${1:?usage: make-data.sh OUTDIR DUMP_MB NDUMPS SYNTH_MB}
DUMP_MB=${2:?}
NDUMPS=${3:?}
SYNTH_MB=${4:?}
HERE=$(cd "$(dirname "$0")" && pwd)
GEN="$HERE/gen.py"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PY=${PYTHON:-python3}

log() { printf '[make-data %s] %s\n' "$(date +%T)" "$*" >&2; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# ---------------------------------------------------------------- synthetic
if [ ! -s "$OUT/synth-random.bin" ]; then
  log "synth-random.bin: ${SYNTH_MB} MB of AES-CTR keystream"
  # A keystream is incompressible and far faster than /dev/urandom; fixed key => the
  # same bytes on every run.
  openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
      -iv 00000000000000000000000000000000 -in /dev/zero 2>/dev/null \
    | head -c "$((SYNTH_MB * 1000000))" > "$OUT/synth-random.bin.tmp" || true
  [ "$(stat -c %s "$OUT/synth-random.bin.tmp")" -eq "$((SYNTH_MB * 1000000))" ] \
    || { log "synth-random.bin: short output"; exit 1; }
  mv "$OUT/synth-random.bin.tmp" "$OUT/synth-random.bin"
fi
if [ ! -s "$OUT/synth-text.txt" ]; then
  log "synth-text.txt: ${SYNTH_MB} MB of random phrases"
  "$PY" "$GEN" text "$((SYNTH_MB * 1000000))" 11 > "$OUT/synth-text.txt.tmp"
  mv "$OUT/synth-text.txt.tmp" "$OUT/synth-text.txt"
fi

# ---------------------------------------------------------------- PostgreSQL dumps
have_dumps=1
for s in spread hot; do
  for i in $(seq 1 "$NDUMPS"); do
    [ -s "$OUT/pg-$s-$i.sql" ] || have_dumps=0
  done
done

PGTMP=""
PGPORT=""
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then (cd "$PGTMP" && runuser -u postgres -- "$@"); else (cd "$PGTMP" && "$@"); fi
}
cleanup() {
  local rc=$?
  if [ -n "$PGTMP" ] && [ -d "$PGTMP" ]; then
    if [ -f "$PGTMP/data/postmaster.pid" ]; then
      as_pg "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PGTMP"
  fi
  rm -f "$OUT"/*.tmp
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

psql_db() {  # psql_db DB [psql args...]
  local db=$1; shift
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$db" "$@"
}

start_pg() {
  PGTMP=$(mktemp -d /tmp/bunker-bench-pg.XXXXXX)
  chmod 755 "$PGTMP"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$PGTMP"
  as_pg "$PGBIN/initdb" -D "$PGTMP/data" -U postgres -A trust -E UTF8 --locale=C \
      --no-sync > "$PGTMP/initdb.log" 2>&1 \
    || { cat "$PGTMP/initdb.log" >&2; exit 1; }
  local try opts
  for try in 1 2 3 4 5; do
    PGPORT=$(free_port)
    # one line: pg_ctl hands -o to a shell, where a newline would end the command
    opts="-c port=$PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PGTMP"
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    opts+=" -c autovacuum=off -c shared_buffers=256MB -c maintenance_work_mem=256MB"
    opts+=" -c max_wal_size=4GB -c checkpoint_timeout=30min"
    opts+=" -c wal_level=minimal -c max_wal_senders=0"
    if as_pg "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 \
        -o "$opts" start > /dev/null; then
      log "PostgreSQL $("$PGBIN/postgres" -V | awk '{print $3}') on 127.0.0.1:$PGPORT ($PGTMP)"
      return 0
    fi
    log "pg_ctl start failed on port $PGPORT (try $try)"; tail -5 "$PGTMP/server.log" >&2 || true
  done
  exit 1
}

stop_pg() {
  as_pg "$PGBIN/pg_ctl" -D "$PGTMP/data" -m fast -w stop > /dev/null
  rm -rf "$PGTMP"
  PGTMP=""
}

dump() {  # dump DB FILE
  "$PGBIN/pg_dump" -Fp -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$1" -f "$2.tmp"
  mv "$2.tmp" "$2"
  log "$(basename "$2"): $(stat -c %s "$2") bytes"
}

# Row counts: accounts rows are ~64 bytes in the dump, notes rows ~346; half each.
ACC_ROWS=$((DUMP_MB * 1000000 / 2 / 64))
NOTE_ROWS=$((DUMP_MB * 1000000 / 2 / 346))
HOT_ACC=$((ACC_ROWS / 100))            # hot series: 1% of accounts, contiguous
HOT_NOTES=$((NOTE_ROWS / 50))          # hot series: the newest 2% of notes
NEW_NOTES=$((NOTE_ROWS / 100))         # both series: 1% new notes per round

mutate() {  # mutate DB spread|hot ROUND
  local db=$1 kind=$2 round=$3 first
  first=$(psql_db "$db" -At -c "SELECT max(id) + 1 FROM notes")
  # setseed() makes random() repeatable, so every run makes the same dumps (except
  # for pg_dump's random \restrict key).
  if [ "$kind" = spread ]; then
    psql_db "$db" -o /dev/null <<SQL
SELECT setseed($round / 1000.0);
-- about one account row in 30 and one note in 20: a change every few KB of the dump
UPDATE accounts SET abalance = abalance + (random() * 2000)::int - 1000
  WHERE random() < 0.033;
UPDATE notes SET likes = likes + 1 + (random() * 5)::int,
                 edited = created + interval '1 hour' * (random() * 1000)::int
  WHERE random() < 0.05;
SQL
  else
    psql_db "$db" -o /dev/null <<SQL
SELECT setseed($round / 1000.0);
-- a hot, contiguous 1% of accounts and the newest 2% of notes, every row of them
UPDATE accounts SET abalance = abalance + (random() * 2000)::int - 1000
  WHERE aid BETWEEN $((ACC_ROWS / 2)) AND $((ACC_ROWS / 2 + HOT_ACC));
UPDATE notes SET likes = likes + 1 + (random() * 5)::int,
                 edited = created + interval '1 hour' * (random() * 1000)::int
  WHERE id >= $first - $HOT_NOTES;
SQL
  fi
  "$PY" "$GEN" notes "$first" "$NEW_NOTES" "$((1000 + round))" \
    | psql_db "$db" -c "COPY notes FROM STDIN"
  psql_db "$db" -c "VACUUM ANALYZE"
}

if [ "$have_dumps" -eq 0 ]; then
  start_pg
  log "loading $ACC_ROWS accounts and $NOTE_ROWS notes"
  psql_db postgres -c "CREATE DATABASE bench_spread"
  # fillfactor 100 (pgbench's default) and no autovacuum: updated rows move to free
  # space that the explicit VACUUM after each round recorded, as on a real server.
  psql_db bench_spread <<'SQL'
CREATE TABLE accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL,
                       filler text);
CREATE TABLE notes (id bigint PRIMARY KEY, created timestamptz NOT NULL, author text,
                    title text, body text, token uuid, likes int NOT NULL DEFAULT 0,
                    edited timestamptz, status text, lang text);
SQL
  "$PY" "$GEN" accounts "$ACC_ROWS" 21 | psql_db bench_spread -c "COPY accounts FROM STDIN" &
  p1=$!
  "$PY" "$GEN" notes 1 "$NOTE_ROWS" 22 | psql_db bench_spread -c "COPY notes FROM STDIN" &
  p2=$!
  wait $p1
  wait $p2
  psql_db bench_spread -c "CREATE INDEX notes_created ON notes (created)" -c "VACUUM ANALYZE"
  psql_db postgres -c "CREATE DATABASE bench_hot TEMPLATE bench_spread"
  for i in $(seq 1 "$NDUMPS"); do
    if [ "$i" -gt 1 ]; then
      mutate bench_spread spread "$i"
      mutate bench_hot hot "$i"
    fi
    dump bench_spread "$OUT/pg-spread-$i.sql" &
    p1=$!
    dump bench_hot "$OUT/pg-hot-$i.sql" &
    p2=$!
    wait $p1
    wait $p2
  done
  stop_pg
fi

# ---------------------------------------------------------------- manifest
if [ ! -s "$OUT/manifest.tsv" ]; then
  log "measuring zstd -3 ratios"
  {
    printf 'series\tindex\tfile\tbytes\tzstd3_bytes\n'
    for f in synth-random.bin synth-text.txt; do
      s=${f%.*}; s=${s/synth-/synthetic-}
      printf '%s\t1\t%s\t%s\t%s\n' "$s" "$f" "$(stat -c %s "$OUT/$f")" \
        "$(zstd -3 -q -c "$OUT/$f" | wc -c)"
    done
    for s in spread hot; do
      for i in $(seq 1 "$NDUMPS"); do
        f=pg-$s-$i.sql
        printf 'pg-%s\t%s\t%s\t%s\t%s\n' "$s" "$i" "$f" "$(stat -c %s "$OUT/$f")" \
          "$(zstd -3 -q -c "$OUT/$f" | wc -c)"
      done
    done
  } > "$OUT/manifest.tsv.tmp"
  mv "$OUT/manifest.tsv.tmp" "$OUT/manifest.tsv"
fi
log "data ready in $OUT"
