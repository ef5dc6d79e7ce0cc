#!/usr/bin/env bash
# bunker against pgBackRest on one PostgreSQL 15 cluster that this script starts itself:
# wal-push latency, full and incremental base backups, restore plus recovery. Prints a
# markdown report and saves it to bench/out/pg-results.md. See bench/README.md
# ("PostgreSQL: bunker against pgBackRest").
#
#   bash bench/pg-bench.sh                       full: pgbench scale 100 + ~1 GB of text (~2.7 GB)
#   BENCH_SCALE=small bash bench/pg-bench.sh     quick: scale 10 + ~0.1 GB of text
#
# Knobs (environment): BENCH_SCALE=small|full|<pgbench scale>, BENCH_SEGMENTS (WAL
# segments pushed by each tool, 50), BENCH_OLTP_SECS (longest pgbench run for the half of
# the pushed segments that is OLTP WAL), BENCH_LIGHT_SECS and BENCH_LIGHT_TPS (the light changes before the
# incremental backups), BENCH_PGBR_BLOCK=0 (pgBackRest incremental without block
# incremental), BENCH_BUNKER (use this bunker binary instead of building
# bench/out/build-release), BENCH_KEEP=1 (keep bench/out/pg-work.*).
#
# The same conventions as bench/run.sh: one run, date +%s.%N-style wall times around each
# process (bench/pg-timeit.py), sync before each timed command, the other processes' CPU
# time recorded with every measurement and a warning when the machine was not idle.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUTDIR="$HERE/out"
mkdir -p "$OUTDIR"
LOG="$OUTDIR/pg-run.log"
: > "$LOG"
T_START=$(date +%s.%N)
BENCH_TAG=pg-bench
. "$HERE/lib.sh"
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b-a}'; }

# ---------------------------------------------------------------- configuration
SCALE=${BENCH_SCALE:-full}
case "$SCALE" in
  small) PGB_SCALE=10;  OLTP_SECS=30; LIGHT_SECS=10 ;;
  full)  PGB_SCALE=100; OLTP_SECS=60; LIGHT_SECS=30 ;;
  ''|*[!0-9]*) die "BENCH_SCALE must be small, full or a pgbench scale factor" ;;
  *)     PGB_SCALE=$SCALE; OLTP_SECS=60; LIGHT_SECS=30 ;;
esac
# notes: ~400 bytes a row in the heap, about as much as pgbench_accounts at that scale
# once its filler is text: 25,000 rows per scale unit (~10 MB)
NOTE_ROWS=$((PGB_SCALE * 25000))
NSEG=${BENCH_SEGMENTS:-50}
OLTP_SECS=${BENCH_OLTP_SECS:-$OLTP_SECS}
LIGHT_SECS=${BENCH_LIGHT_SECS:-$LIGHT_SECS}
LIGHT_TPS=${BENCH_LIGHT_TPS:-100}
PGBR_BLOCK=${BENCH_PGBR_BLOCK:-1}
for v in NSEG OLTP_SECS LIGHT_SECS LIGHT_TPS; do
  [ "${!v}" -ge 1 ] 2>/dev/null || die "$v must be a positive number"
done

RAW="$OUTDIR/pg-raw.tsv"     # every measurement, one line each
META="$OUTDIR/pg-meta.tsv"   # key \t value for the report header
NOTES="$OUTDIR/pg-notes.txt" # one note a line
printf 'step\ttool\top\tindex\tbytes\tseconds\tpeak_rss_kib\tstatus\tcpu_seconds\tother_cpu_seconds\n' > "$RAW"
: > "$META"; : > "$NOTES"

# ---------------------------------------------------------------- cleanup
. "$ROOT/tests/integration/lib-pg.sh"
WORK=""
BG_PIDS=()
R_DATAS=()   # restored data directories that may have a running server
cleanup() {
  local rc=$? p d
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${R_DATAS[@]}"; do
    [ -f "$d/postmaster.pid" ] && pg_as_server "$PG_BIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop \
      >/dev/null 2>&1 || true
  done
  if [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    pg_as_server "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- packages
if command -v dpkg-query > /dev/null; then
  ensure_pkgs time zstd python3 postgresql-15 || die "cannot install the base packages"
  ensure_pkgs pgbackrest || note "pgbackrest could not be installed: its rows are skipped"
fi
for c in zstd python3 "$PG_BIN/pgbench" "$PG_BIN/pg_ctl"; do
  command -v "$c" > /dev/null || die "$c is missing"
done
HAVE_PGBR=0
command -v pgbackrest > /dev/null && HAVE_PGBR=1

# ---------------------------------------------------------------- bunker build
BUILD="$OUTDIR/build-release"
BUNKER=${BENCH_BUNKER:-}
if [ -z "$BUNKER" ]; then
  command -v meson > /dev/null || bash "$ROOT/scripts/deps.sh" >> "$LOG" 2>&1 || true
  log "building bunker (release) in $BUILD"
  if [ ! -f "$BUILD/build.ninja" ]; then
    rm -rf "$BUILD"
    meson setup --buildtype=release "$BUILD" "$ROOT" >> "$LOG" 2>&1 \
      || die "meson setup failed (see bench/out/pg-run.log)"
  fi
  ninja -C "$BUILD" tools/bunker >> "$LOG" 2>&1 || die "the release build failed (see bench/out/pg-run.log)"
  BUNKER="$BUILD/tools/bunker"
fi
[ -x "$BUNKER" ] || die "no bunker binary at $BUNKER"
BUNKER=$(cd "$(dirname "$BUNKER")" && pwd)/$(basename "$BUNKER")

# ---------------------------------------------------------------- work directory
# Repositories, segments and restores next to bench/out (same disk for both tools).
WORK=$(mktemp -d "$OUTDIR/pg-work.XXXXXX")
chmod 711 "$WORK"
for d in tmp aside bunker pgbr pgbr-wal restore; do
  mkdir -p "$WORK/$d"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$WORK/$d"
done
# the server's OS user must reach WORK (pg_start opens the parents the same way)
if [ "$(id -u)" -eq 0 ]; then
  d=$WORK
  while ! runuser -u postgres -- test -x "$WORK" && [ "$d" != / ]; do
    d=$(dirname "$d"); chmod o+x "$d" 2>/dev/null || break
  done
fi

# ---------------------------------------------------------------- measuring
MEASURE_QUIET=0
# measure STEP TOOL OP INDEX BYTES CMD...: time one command run as the server's OS user;
# its stdout goes to $WORK/stdout; 1 if it failed
measure() {
  local step=$1 tool=$2 op=$3 idx=$4 bytes=$5 rc=0 line
  shift 5
  echo "+ $*" >> "$LOG"
  : > "$WORK/rec"
  pg_as_server python3 "$HERE/pg-timeit.py" "$step" "$tool" "$op" "$idx" "$bytes" -- "$@" \
    > "$WORK/stdout" 2>> "$LOG" 3> "$WORK/rec" || rc=$?
  line=$(cat "$WORK/rec")
  if [ -z "$line" ]; then
    rec "$step" "$tool" "$op" "$idx" "$bytes" 0 0 "exit-$rc" 0 0
    log "$step $tool $op $idx: pg-timeit failed (exit $rc)"
    return 1
  fi
  printf '%s\n' "$line" >> "$RAW"
  local secs rss st
  secs=$(cut -f6 <<<"$line"); rss=$(cut -f7 <<<"$line"); st=$(cut -f8 <<<"$line")
  if [ "$st" != ok ]; then
    log "$step $tool $op $idx FAILED ($st); see bench/out/pg-run.log"
    tail -n 5 "$LOG" | sed 's/^/    /' >&2
    return 1
  fi
  local msg
  msg=$(printf '%-8s %-10s %-10s %-3s %8.1f MB %8.3f s %8.1f MB/s %6d MiB' "$step" "$tool" "$op" \
    "$idx" "$(awk -v b="$bytes" 'BEGIN{print b/1e6}')" "$secs" \
    "$(awk -v b="$bytes" -v s="$secs" 'BEGIN{print (s > 0 ? b/1e6/s : 0)}')" "$((rss / 1024))")
  if [ "$MEASURE_QUIET" = 1 ]; then echo "$msg" >> "$LOG"; else log "$msg"; fi
}

du_b() { du -sb --apparent-size "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
# warm DIR...: read every file (but pg_wal) into the page cache, untimed. This
# kernel's DAMON pages out page cache idle for about 30 s (the kdamond scheme in
# /sys/kernel/mm/damon), so whichever command ran first after a pause read from
# disk: 11.0 s for a full backup that took 6.3 s warm. Each timed backup and
# restore starts with what it reads in the cache, whatever ran before it.
warm() {
  find "$@" -name pg_wal -prune -o -type f -print0 | xargs -0 -r cat > /dev/null 2>&1 || true
}
cluster_bytes() { du -sb --apparent-size --exclude=pg_wal "$PG_DATA" | cut -f1; }
json_get() {  # json_get FILE KEY: a top-level field of a JSON object
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2" \
    2>/dev/null || true
}

# ---------------------------------------------------------------- the cluster
meta date "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
meta machine "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr)"
meta disk "$(df -h --output=source,fstype "$OUTDIR" | tail -1 | tr -s ' ')"
meta bunker "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty') ($BUNKER)"
[ "$HAVE_PGBR" = 1 ] && meta pgbackrest "$(pgbackrest version)"
meta postgresql "$("$PG_BIN/postgres" --version)"

log "starting PostgreSQL 15 in $WORK/pg"
pg_start "$WORK/pg" >> "$LOG" 2>&1 || die "PostgreSQL did not start (see bench/out/pg-run.log)"
pg_conf_set shared_buffers 256MB
pg_conf_set maintenance_work_mem 256MB
pg_conf_set autovacuum off
pg_conf_set checkpoint_timeout 30min
pg_conf_set archive_mode on
# While the data loads and pgbench runs, completed segments are copied aside: the
# wal-push latency test pushes a sample of them by hand later.
pg_conf_set archive_command "cp %p $WORK/aside/%f"
pg_restart || die "PostgreSQL did not restart with archiving on"
CONNINFO="host=$PG_SOCKDIR port=$PGPORT user=postgres dbname=postgres"
log "PostgreSQL on 127.0.0.1:$PGPORT, socket $PG_SOCKDIR"

psql_q() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

T0=$(date +%s.%N)
log "loading: pgbench scale $PGB_SCALE with a text filler, $NOTE_ROWS notes"
{
  "$PG_BIN/pgbench" -i -s "$PGB_SCALE" -I dt -q postgres
  psql_q <<SQL
INSERT INTO pgbench_branches (bid, bbalance) SELECT g, 0 FROM generate_series(1, $PGB_SCALE) g;
INSERT INTO pgbench_tellers (tid, bid, tbalance)
  SELECT g, (g - 1) / 10 + 1, 0 FROM generate_series(1, $((PGB_SCALE * 10))) g;
CREATE TABLE notes (id bigint PRIMARY KEY, created timestamptz NOT NULL, author text,
                    title text, body text, token uuid, likes int NOT NULL DEFAULT 0,
                    edited timestamptz, status text, lang text);
SQL
} >> "$LOG" 2>&1 || die "creating the tables failed"
# pgbench_accounts as pgbench makes it, but the filler is random words (bench/gen.py),
# not blanks; notes are articles of random words (the table of bench/make-data.sh)
python3 "$HERE/gen.py" accounts "$((PGB_SCALE * 100000))" 21 \
  | psql_q -c "COPY pgbench_accounts FROM STDIN" >> "$LOG" 2>&1 &
p1=$!; BG_PIDS+=("$p1")
python3 "$HERE/gen.py" notes 1 "$NOTE_ROWS" 22 \
  | psql_q -c "COPY notes FROM STDIN" >> "$LOG" 2>&1 &
p2=$!; BG_PIDS+=("$p2")
wait "$p1" || die "loading pgbench_accounts failed"
wait "$p2" || die "loading notes failed"
BG_PIDS=()
{
  "$PG_BIN/pgbench" -i -I p -q postgres
  psql_q -c "CREATE INDEX notes_created ON notes (created)"
  # hint bits and the visibility map settled now, so that the first read after the full
  # backups does not rewrite every page
  psql_q -c "VACUUM (FREEZE, ANALYZE)"
  psql_q -c "CHECKPOINT"
} >> "$LOG" 2>&1 || die "indexing or vacuuming failed"
log "loaded in $(secs_since "$T0") s"

# OLTP WAL: half the pushed segments come from a pgbench run (until it has written
# that many, at most OLTP_SECS), half from the load.
OLTP_FIRST=$(pg_sql "SELECT pg_walfile_name(pg_current_wal_lsn())")
want=$((NSEG / 2 + 1))
log "pgbench -c 4 -j 2 until it has written $want WAL segments (at most $OLTP_SECS s)"
T0=$(date +%s.%N)
"$PG_BIN/pgbench" -n -c 4 -j 2 -T "$OLTP_SECS" postgres >> "$LOG" 2>&1 &
p1=$!; BG_PIDS+=("$p1")
while kill -0 "$p1" 2>/dev/null; do
  n=$(cd "$WORK/aside" && ls | awk -v f="$OLTP_FIRST" '("" $0) >= ("" f)' | wc -l)
  [ "$n" -ge "$want" ] && { kill "$p1" 2>/dev/null || true; break; }
  sleep 0.5
done
wait "$p1" 2>/dev/null || true
BG_PIDS=()
OLTP_LAST=$(pg_psql -c "SELECT pg_logical_emit_message(false, 'bench', 'switch')" \
  -c "SELECT pg_walfile_name(pg_switch_wal())" | tail -n 1)
for i in $(seq 1 1200); do [ -e "$WORK/aside/$OLTP_LAST" ] && break; sleep 0.1; done
[ -e "$WORK/aside/$OLTP_LAST" ] || die "segment $OLTP_LAST was not archived within 120 s"
log "pgbench ran $(secs_since "$T0") s"
# Clean up after pgbench (dead rows on most pages of pgbench_accounts): otherwise the
# first scan after the backups prunes every page and writes a full-page image of each.
{ psql_q -c "VACUUM (FREEZE, ANALYZE)"; psql_q -c "CHECKPOINT"; } >> "$LOG" 2>&1 || die "VACUUM failed"

CLUSTER_BYTES=$(cluster_bytes)
log "cluster: $((CLUSTER_BYTES / 1000000)) MB without pg_wal; measuring its zstd -3 ratio"
ZSTD_BYTES=$(tar -C "$PG_DATA" --exclude=./pg_wal -cf - . 2>/dev/null | zstd -3 -q -c | wc -c)
meta scale "$SCALE: pgbench scale $PGB_SCALE (accounts filler = random words) + $NOTE_ROWS notes of random words"
meta cluster "$CLUSTER_BYTES $ZSTD_BYTES $(pg_sql "SELECT pg_total_relation_size('pgbench_accounts')") $(pg_sql "SELECT pg_total_relation_size('notes')")"

# ---------------------------------------------------------------- repositories
BK_REPO="$WORK/bunker/repo"; BK_KEY="$WORK/bunker/key"
BKW_REPO="$WORK/bunker/wal-repo"; BKW_KEY="$WORK/bunker/wal-key"
bk() { "$BUNKER" -q --repo "$BK_REPO" --key-file "$BK_KEY" "$@"; }
pg_as_server "$BUNKER" --repo "$BK_REPO" --new-key-file "$BK_KEY" init > "$WORK/init.out" 2>&1 \
  || { cat "$WORK/init.out" >> "$LOG"; die "bunker init failed"; }
cat "$WORK/init.out" >> "$LOG"
meta bunker-repo "$(sed -n 's/.*(\(.*\)).*/\1/p' "$WORK/init.out" | head -1)"
pg_as_server "$BUNKER" -q --repo "$BKW_REPO" --new-key-file "$BKW_KEY" init >> "$LOG" 2>&1 \
  || die "bunker init (wal-push repository) failed"
# the second round's full backup goes into a repository of its own, which the archiver
# also feeds, so that it too waits for its WAL there as in the first round
BK2_REPO="$WORK/bunker/repo2"; BK2_KEY="$WORK/bunker/key2"
pg_as_server "$BUNKER" -q --repo "$BK2_REPO" --new-key-file "$BK2_KEY" init >> "$LOG" 2>&1 \
  || die "bunker init (second full backup's repository) failed"

PGBR_CONF="$WORK/pgbr/pgbackrest.conf"
PGBRW_CONF="$WORK/pgbr-wal/pgbackrest.conf"
pgbr_conf() {  # pgbr_conf DIR: a config with the repository in DIR/repo
  local block=""
  [ "$PGBR_BLOCK" = 1 ] && block=$'repo1-block=y\nbeta=y'
  cat <<EOF
[global]
repo1-path=$1/repo
repo1-retention-full=9
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-passphrase-for-pgbackrest
compress-type=zst
process-max=2
start-fast=y
repo1-bundle=y
$block
log-path=$1/log
lock-path=$1/lock
spool-path=$1/spool
log-level-console=warn
log-level-file=off

[bench]
pg1-path=$PG_DATA
pg1-port=$PGPORT
pg1-socket-path=$PG_SOCKDIR
pg1-user=postgres
EOF
}
if [ "$HAVE_PGBR" = 1 ]; then
  if [ "$PGBR_BLOCK" = 1 ]; then
    meta pgbr-options "bundle block"
    v=$(pgbackrest version | awk '{print $2}')
    if [ "$(printf '%s\n2.46\n' "$v" | sort -V | head -1)" != 2.46 ]; then
      note "pgBackRest $v: block incremental (repo1-block) is a beta feature before 2.46 (stable from 2.46); it is used here with beta=y, also for the full backup as its documentation advises (BENCH_PGBR_BLOCK=0: plain file-level incremental)"
    fi
  else
    meta pgbr-options "bundle"
    note "pgBackRest incremental without block incremental (BENCH_PGBR_BLOCK=0): changed files are stored whole"
  fi
  pgbr_conf "$WORK/pgbr" > "$PGBR_CONF"
  pgbr_conf "$WORK/pgbr-wal" > "$PGBRW_CONF"
  chmod 644 "$PGBR_CONF" "$PGBRW_CONF"
  if ! pg_as_server pgbackrest --config="$PGBR_CONF" --stanza=bench stanza-create >> "$LOG" 2>&1 \
     || ! pg_as_server pgbackrest --config="$PGBRW_CONF" --stanza=bench stanza-create >> "$LOG" 2>&1; then
    note "pgbackrest stanza-create failed (see bench/out/pg-run.log): its rows are skipped"
    HAVE_PGBR=0
  fi
fi
# both tools archive every segment from now on (bunker first); during the second
# round of full backups, bunker's second repository gets them too (ac2)
push_to() { printf "'%s' -q --repo '%s' --key-file '%s' pg wal-push %%p" "$BUNKER" "$1" "$2"; }
pgbr_push=""
[ "$HAVE_PGBR" = 1 ] && pgbr_push=" && pgbackrest --config='$PGBR_CONF' --stanza=bench archive-push %p"
ac="$(push_to "$BK_REPO" "$BK_KEY")$pgbr_push"
ac2="$(push_to "$BK_REPO" "$BK_KEY") && $(push_to "$BK2_REPO" "$BK2_KEY")$pgbr_push"
pg_conf_set archive_command "$ac"
pg_reload
meta archive_command "$ac"
meta archive_command_full_round_2 "$ac2"
if [ "$HAVE_PGBR" = 1 ]; then
  pg_as_server pgbackrest --config="$PGBR_CONF" --stanza=bench check >> "$LOG" 2>&1 \
    || die "pgbackrest check failed: archive_command does not work (see bench/out/pg-run.log)"
fi

# wait_archived SEG: until the server has archived SEG (both tools' pushes succeeded)
wait_archived() {
  local i a
  for i in $(seq 1 1200); do
    a=$(pg_sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    [ -n "$a" ] && [[ ! "${a:0:24}" < "$1" ]] && return 0
    sleep 0.1
  done
  return 1
}
switch_wal() {
  pg_psql -c "SELECT pg_logical_emit_message(false, 'bench', 'switch')" \
    -c "SELECT pg_walfile_name(pg_switch_wal())" | tail -n 1
}
seg=$(switch_wal)
wait_archived "$seg" || die "archive_command does not work: $seg not archived in 120 s (see $PG_LOG)"

# ---------------------------------------------------------------- 1. wal-push latency
mapfile -t all_segs < <(cd "$WORK/aside" && ls | grep -E '^[0-9A-F]{24}$' | sort)
load_segs=(); oltp_segs=()
for s in "${all_segs[@]}"; do
  if [[ "$s" < "$OLTP_FIRST" ]]; then load_segs+=("$s")
  elif [[ ! "$s" > "$OLTP_LAST" ]]; then oltp_segs+=("$s"); fi
done
pick() {  # pick K SEG...: K names spread evenly over the list
  local k=$1 n i; shift
  n=$#
  [ "$k" -ge "$n" ] && { printf '%s\n' "$@"; return; }
  local a=("$@")
  for ((i = 0; i < k; i++)); do echo "${a[$((i * n / k))]}"; done
}
n_oltp=$((NSEG / 2)); [ "$n_oltp" -gt ${#oltp_segs[@]} ] && n_oltp=${#oltp_segs[@]}
n_load=$((NSEG - n_oltp)); [ "$n_load" -gt ${#load_segs[@]} ] && n_load=${#load_segs[@]}
n_oltp=$((NSEG - n_load)); [ "$n_oltp" -gt ${#oltp_segs[@]} ] && n_oltp=${#oltp_segs[@]}
mapfile -t segs < <({ [ "$n_load" -gt 0 ] && pick "$n_load" "${load_segs[@]}"; \
  [ "$n_oltp" -gt 0 ] && pick "$n_oltp" "${oltp_segs[@]}"; } | sort)
SEG_ZSTD=$(cd "$WORK/aside" && cat "${segs[@]}" | zstd -3 -q -c | wc -c)
meta segments "${#segs[@]} $n_load $n_oltp ${#load_segs[@]} ${#oltp_segs[@]} $SEG_ZSTD"
log "wal-push: ${#segs[@]} segments ($n_load of the load's ${#load_segs[@]}, $n_oltp of pgbench's ${#oltp_segs[@]}), each tool into a fresh repository"
MEASURE_QUIET=1
i=0
for s in "${segs[@]}"; do
  i=$((i + 1))
  order=(bunker pgbackrest)
  [ $((i % 2)) -eq 0 ] && order=(pgbackrest bunker)   # alternate who goes first
  for t in "${order[@]}"; do
    case $t in
      bunker) measure walpush bunker push "$i" 16777216 \
                "$BUNKER" -q --repo "$BKW_REPO" --key-file "$BKW_KEY" pg wal-push "$WORK/aside/$s" || true ;;
      pgbackrest) [ "$HAVE_PGBR" = 1 ] && { measure walpush pgbackrest push "$i" 16777216 \
                pgbackrest --config="$PGBRW_CONF" --stanza=bench archive-push "$WORK/aside/$s" || true; } ;;
    esac
  done
done
MEASURE_QUIET=0
rec walpush bunker stored 0 "$(du_b "$BKW_REPO")" 0 0 ok 0 0
[ "$HAVE_PGBR" = 1 ] && rec walpush pgbackrest stored 0 "$(du_b "$WORK/pgbr-wal/repo/archive")" 0 0 ok 0 0
python3 - "$RAW" <<'PY' >&2
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["step"] == "walpush" and r["op"] == "push"]
for t in ("bunker", "pgbackrest"):
    v = sorted(float(r["seconds"]) * 1000 for r in rows if r["tool"] == t and r["status"] == "ok")
    bad = sum(1 for r in rows if r["tool"] == t and r["status"] != "ok")
    if v:
        print(f"[pg-bench] wal-push {t}: {len(v)} ok, {bad} failed, p50 {v[len(v) // 2]:.1f} ms, "
              f"p90 {v[min(len(v) - 1, int(len(v) * 0.9))]:.1f} ms")
PY
rm -rf "$WORK/aside"/*

# ---------------------------------------------------------------- 2. full base backups
BK_OK=1 PGBR_OK=$HAVE_PGBR
# backup STEP TOOL [ROUND]: one base backup, its repository growth and the tool's own
# account. Round 2 (full only) is timed alone: bunker's goes into $BK2_REPO,
# pgBackRest's is a second full backup in its repository. Each starts after an
# untimed CHECKPOINT, so that its own checkpoint finds nothing to write whatever ran
# before it. (The rounds still differ: bunker's round 1 was 0.5-1.8 s slower than its
# round 2 in five of the six runs of 2026-11-22 evening, with or without this
# CHECKPOINT, and pgBackRest's slower round was either one; the ABBA order averages
# that out.)
backup() {
  local step=$1 tool=$2 round=${3:-1} bytes before after
  bytes=$(cluster_bytes)
  psql_q -c "CHECKPOINT" >> "$LOG" 2>&1 || die "CHECKPOINT failed"
  warm "$PG_DATA"
  if [ "$round" = 2 ]; then
    if [ "$tool" = bunker ]; then
      measure "$step" bunker basebackup 2 "$bytes" "$BUNKER" -q --repo "$BK2_REPO" \
        --key-file "$BK2_KEY" pg basebackup --dbname "$CONNINFO" --fast-checkpoint || BK_OK=0
    else
      measure "$step" pgbackrest backup 2 "$bytes" pgbackrest --config="$PGBR_CONF" \
        --stanza=bench --type=full backup || PGBR_OK=0
    fi
    return
  fi
  if [ "$tool" = bunker ]; then
    before=$(du_b "$BK_REPO"); local bd; bd=$(du_b "$BK_REPO/data")
    if measure "$step" bunker basebackup 1 "$bytes" "$BUNKER" -q --json --repo "$BK_REPO" \
         --key-file "$BK_KEY" pg basebackup --dbname "$CONNINFO" --fast-checkpoint; then
      cat "$WORK/stdout" >> "$LOG"
      rec "$step" bunker stored-own 0 "$(json_get "$WORK/stdout" stored_bytes)" 0 0 ok 0 0
      rec "$step" bunker logical-own 0 "$(json_get "$WORK/stdout" logical_bytes)" 0 0 ok 0 0
      rec "$step" bunker data-dir-growth 0 "$(( $(du_b "$BK_REPO/data") - bd ))" 0 0 ok 0 0
    else
      BK_OK=0
    fi
    after=$(du_b "$BK_REPO")
  else
    local type=full; [ "$step" = incr ] && type=incr
    before=$(du_b "$WORK/pgbr/repo")
    if measure "$step" pgbackrest backup 1 "$bytes" pgbackrest --config="$PGBR_CONF" \
         --stanza=bench --type="$type" backup; then
      pg_as_server pgbackrest --config="$PGBR_CONF" --stanza=bench --output=json info \
        > "$WORK/pgbr-info.json" 2>> "$LOG" || true
      python3 - "$WORK/pgbr-info.json" "$step" "$RAW" <<'PY' || true
import json, sys
b = json.load(open(sys.argv[1]))[0]["backup"][-1]
with open(sys.argv[3], "a") as f:
    f.write(f"{sys.argv[2]}\tpgbackrest\tstored-own\t0\t{b['info']['repository']['delta']}\t0\t0\tok\t0\t0\n")
    f.write(f"{sys.argv[2]}\tpgbackrest\tlogical-own\t0\t{b['info']['size']}\t0\t0\tok\t0\t0\n")
PY
    else
      PGBR_OK=0
    fi
    after=$(du_b "$WORK/pgbr/repo")
  fi
  rec "$step" "$tool" repo-growth 0 "$((after - before))" 0 0 ok 0 0
  log "$step $tool: repository grew by $(( (after - before) / 1000 )) kB"
}
log "full base backups, round 1 (bunker first)"
backup full bunker
[ "$PGBR_OK" = 1 ] && backup full pgbackrest
log "full base backups, round 2 (pgBackRest first)"
# bunker's second repository gets the WAL from here on: with a segment of the
# cluster there, its backup waits for its WAL in the repository as in round 1
pg_conf_set archive_command "$ac2"
pg_reload
seg2=$(switch_wal)
wait_archived "$seg2" || die "archive_command does not work: $seg2 not archived (see $PG_LOG)"
[ "$PGBR_OK" = 1 ] && backup full pgbackrest 2
[ "$BK_OK" = 1 ] && backup full bunker 2
pg_conf_set archive_command "$ac"
pg_reload

# ---------------------------------------------------------------- 3. incremental
log "light changes: pgbench -c 2 -j 2 -R $LIGHT_TPS -T $LIGHT_SECS"
"$PG_BIN/pgbench" -n -c 2 -j 2 -R "$LIGHT_TPS" -T "$LIGHT_SECS" postgres >> "$LOG" 2>&1 \
  || die "pgbench (light changes) failed"
meta light-tps "$LIGHT_TPS"; meta light-secs "$LIGHT_SECS"
meta light "$(grep -E '^number of transactions actually processed' "$LOG" | tail -1 | sed 's/.*: //')"
log "incremental base backups"
[ "$BK_OK" = 1 ] && backup incr bunker
[ "$PGBR_OK" = 1 ] && backup incr pgbackrest

# the state both restores must reach (read first: a scan may prune pages, which writes
# WAL), then the end of the WAL they recover to
STATE_SQL="SELECT (SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts) || ' ' ||
  (SELECT count(*) || ':' || sum(delta) FROM pgbench_history) || ' ' ||
  (SELECT sum(tbalance) FROM pgbench_tellers) || ' ' ||
  (SELECT count(*) || ':' || sum(length(body)) || ':' || sum(likes) FROM notes)"
WANT=$(pg_sql "$STATE_SQL")
echo "state: $WANT" >> "$LOG"
seg=$(switch_wal)
wait_archived "$seg" || die "$seg was not archived in 120 s (see $PG_LOG)"
pg_stop

# ---------------------------------------------------------------- 4. restore + recovery
# restore_and_start TOOL: restore the newest backup into a new directory, start a server
# on it (own socket, no TCP, archive_mode off), wait for connections, then for the end of
# recovery (pg_is_in_recovery() false); compare the tables with the original's end state
warm_repo() { if [ "$1" = bunker ]; then warm "$BK_REPO"; else warm "$WORK/pgbr/repo"; fi; }
restore_and_start() {
  local tool=$1 dir="$WORK/restore/$1" bytes port t0 t_ready j0 ok=0 i st
  warm_repo "$tool"
  case $tool in
    bunker) measure restore bunker restore 1 "$CLUSTER_BYTES" "$BUNKER" -q --repo "$BK_REPO" \
              --key-file "$BK_KEY" pg restore --target "$dir" || return 0 ;;
    pgbackrest) measure restore pgbackrest restore 1 "$CLUSTER_BYTES" pgbackrest \
              --config="$PGBR_CONF" --stanza=bench --pg1-path="$dir" restore || return 0 ;;
  esac
  bytes=$(du -sb --apparent-size --exclude=pg_wal "$dir" | cut -f1)
  rec restore "$tool" restored-bytes 0 "$bytes" 0 0 ok 0 0
  mkdir -p "$dir.sock"; : > "$dir.log"
  [ "$(id -u)" -ne 0 ] || chown postgres: "$dir.sock" "$dir.log"
  port=$(_pg_free_port)
  R_DATAS+=("$dir")
  sync
  j0=$(busy_jiffies)
  t0=$(date +%s.%N)
  if pg_as_server "$PG_BIN/pg_ctl" -D "$dir" -l "$dir.log" -w -t 1800 \
       -o "-c port=$port -c listen_addresses='' -c unix_socket_directories='$dir.sock' -c archive_mode=off" \
       start >> "$LOG" 2>&1; then
    t_ready=$(secs_since "$t0")
    for ((i = 0; i < 18000; i++)); do
      [ "$("$PG_BIN/psql" -X -At -h "$dir.sock" -p "$port" -U postgres -d postgres \
            -c "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ] && { ok=1; break; }
      sleep 0.05
    done
  fi
  local t_done; t_done=$(secs_since "$t0")
  # other = the whole machine's busy time during recovery (the server's own included)
  local busy; busy=$(awk -v a="$j0" -v b="$(busy_jiffies)" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}')
  if [ "$ok" = 1 ]; then
    rec restore "$tool" ready 0 "$bytes" "$t_ready" 0 ok 0 "$busy"
    rec restore "$tool" recovery 0 "$bytes" "$t_done" 0 ok 0 "$busy"
    local got; got=$("$PG_BIN/psql" -X -At -h "$dir.sock" -p "$port" -U postgres -d postgres \
      -c "$STATE_SQL" 2>> "$LOG" || true)
    st=ok; [ "$got" = "$WANT" ] || st=mismatch
    rec restore "$tool" verify 0 0 0 0 "$st" 0 0
    log "restore $tool: accepting connections after $t_ready s, recovery done after $t_done s, tables $st"
    [ "$st" = ok ] || log "restore $tool: tables differ: want '$WANT', got '$got'"
    grep -cE "restored log file" "$dir.log" | sed "s/^/restore $tool: WAL files restored by restore_command: /" >> "$LOG"
  else
    rec restore "$tool" recovery 0 "$bytes" "$t_done" 0 fail 0 "$busy"
    log "restore $tool: the server did not finish recovery; log tail:"
    tail -n 15 "$dir.log" | tee -a "$LOG" >&2
  fi
  cat "$dir.log" >> "$LOG"
  pg_as_server "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 120 stop >> "$LOG" 2>&1 || true
  rm -rf "$dir" "$dir.sock" "$dir.log"
}
log "restores"
[ "$BK_OK" = 1 ] && restore_and_start bunker
[ "$PGBR_OK" = 1 ] && restore_and_start pgbackrest
# A restore right after another one costs much more system time on these machines
# (seen: 2.6 s against 7.6 s for the same command, whichever tool went second), so a
# second round in the other order, restore only, each into a new directory; the
# report takes the mean of the two rounds.
restore_again() {
  local tool=$1 dir="$WORK/restore/$1-again"
  warm_repo "$tool"
  case $tool in
    bunker) measure restore bunker restore 2 "$CLUSTER_BYTES" "$BUNKER" -q --repo "$BK_REPO" \
              --key-file "$BK_KEY" pg restore --target "$dir" || true ;;
    pgbackrest) measure restore pgbackrest restore 2 "$CLUSTER_BYTES" pgbackrest \
              --config="$PGBR_CONF" --stanza=bench --pg1-path="$dir" restore || true ;;
  esac
  rm -rf "$dir"
}
[ "$PGBR_OK" = 1 ] && restore_again pgbackrest
[ "$BK_OK" = 1 ] && restore_again bunker

# the repository after all this (not timed for the report)
if [ "$BK_OK" = 1 ]; then
  log "bunker check"
  measure check bunker check 0 0 "$BUNKER" --repo "$BK_REPO" --key-file "$BK_KEY" check \
    || note "bunker check failed on the repository after the run: see bench/out/pg-run.log"
  cat "$WORK/stdout" >> "$LOG" # (the problems it found, one a line)
fi

# ---------------------------------------------------------------- report
meta duration "$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f s", b-a}')"
python3 "$HERE/pg-report.py" "$OUTDIR" > "$OUTDIR/pg-results.md"
cat "$OUTDIR/pg-results.md"
log "saved bench/out/pg-results.md (raw numbers: bench/out/pg-raw.tsv, log: bench/out/pg-run.log)"
