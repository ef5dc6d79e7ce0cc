#!/usr/bin/env bash
# bunker benchmark: bunker against borg, restic and a zstd|openssl script on synthetic
# data and on two series of real pg_dump outputs. Prints a markdown report and saves it
# to bench/out/results.md. See bench/README.md.
#
#   bash bench/run.sh                       full run (5 dumps of ~400 MB per series)
#   BENCH_SCALE=small bash bench/run.sh     quick run (5 dumps of ~40 MB), a few minutes
#
# Knobs (environment): BENCH_SCALE=small|full|<MB per dump>, BENCH_DUMPS (dumps per
# series, 5), BENCH_SYNTH_MB (size of each synthetic file), BENCH_TOOLS (default
# "bunker borg borg-64K restic zstd-openssl"), BENCH_CHUNK_SIZES ("16K 32K 64K"),
# BENCH_SERIES ("synthetic-random synthetic-text pg-spread pg-hot"), BENCH_BUNKER (use
# this bunker binary instead of building bench/out/build-release), BENCH_KEEP=1 (keep
# the repositories in bench/out/work.*), BENCH_REGEN=1 (regenerate the data).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUTDIR="$HERE/out"
mkdir -p "$OUTDIR"
LOG="$OUTDIR/run.log"
: > "$LOG"
T_START=$(date +%s.%N)
BENCH_TAG=bench
. "$HERE/lib.sh"

# ---------------------------------------------------------------- configuration
SCALE=${BENCH_SCALE:-full}
case "$SCALE" in
  small) DUMP_MB=40;  SYNTH_MB=64;  CHUNKER_MIB=256 ;;
  full)  DUMP_MB=400; SYNTH_MB=512; CHUNKER_MIB=1024 ;;
  ''|*[!0-9]*) die "BENCH_SCALE must be small, full or a number of MB per dump" ;;
  *)     DUMP_MB=$SCALE; SYNTH_MB=$SCALE; CHUNKER_MIB=1024 ;;
esac
NDUMPS=${BENCH_DUMPS:-5}
SYNTH_MB=${BENCH_SYNTH_MB:-$SYNTH_MB}
TOOLS=${BENCH_TOOLS:-bunker borg borg-64K restic zstd-openssl}
CHUNK_SIZES=${BENCH_CHUNK_SIZES:-16K 32K 64K}
SERIES=${BENCH_SERIES:-synthetic-random synthetic-text pg-spread pg-hot}
[ "$NDUMPS" -ge 1 ] 2>/dev/null || die "BENCH_DUMPS must be a positive number"
for s in $SERIES; do
  case "$s" in synthetic-random|synthetic-text|pg-spread|pg-hot) ;;
    *) die "unknown series $s (BENCH_SERIES)" ;; esac
done

WORK=""
MD_PID=""
cleanup() {
  local rc=$?
  # make-data.sh stops its PostgreSQL on TERM
  if [ -n "$MD_PID" ] && kill -0 "$MD_PID" 2>/dev/null; then
    kill -TERM "$MD_PID" 2>/dev/null || true
    wait "$MD_PID" 2>/dev/null || true
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Repositories live next to the data (same disk for every tool).
WORK=$(mktemp -d "$OUTDIR/work.XXXXXX")

RAW="$OUTDIR/raw.tsv"     # every measurement, one line each
META="$OUTDIR/meta.tsv"   # key \t value for the report header
NOTES="$OUTDIR/notes.txt" # one note a line
CHUNKER_OUT="$OUTDIR/chunker.txt"
printf 'series\tvariant\top\tindex\tbytes\tseconds\tpeak_rss_kib\tstatus\tcpu_seconds\tother_cpu_seconds\n' > "$RAW"
: > "$META"; : > "$NOTES"; rm -f "$CHUNKER_OUT"

# ---------------------------------------------------------------- packages
if command -v dpkg-query > /dev/null; then
  ensure_pkgs time zstd openssl python3 postgresql-15 || die "cannot install the base packages"
  for t in $TOOLS; do
    case "$t" in
      borg|borg-64K) ensure_pkgs borgbackup || note "borgbackup could not be installed" ;;
      restic) ensure_pkgs restic || note "restic could not be installed" ;;
    esac
  done
fi
for c in /usr/bin/time zstd openssl python3; do
  command -v "$c" > /dev/null || die "$c is missing"
done

# ---------------------------------------------------------------- data
DATA="$OUTDIR/data/d${DUMP_MB}x${NDUMPS}-s${SYNTH_MB}"
STAMP=$(cat "$HERE/gen.py" "$HERE/make-data.sh" | sha256sum | cut -c1-16)
if [ "${BENCH_REGEN:-0}" = 1 ] || [ "$(cat "$DATA/.stamp" 2>/dev/null)" != "$STAMP" ]; then
  rm -rf "$DATA"
fi
mkdir -p "$DATA"
T0=$(date +%s.%N)
bash "$HERE/make-data.sh" "$DATA" "$DUMP_MB" "$NDUMPS" "$SYNTH_MB" > >(tee -a "$LOG" >&2) 2>&1 &
MD_PID=$!
wait "$MD_PID" || die "data generation failed"
MD_PID=""
echo "$STAMP" > "$DATA/.stamp"
log "data ready in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s: $DATA"

series_files() {  # series_files SERIES: the series' files in backup order
  case "$1" in
    synthetic-random) echo "$DATA/synth-random.bin" ;;
    synthetic-text)   echo "$DATA/synth-text.txt" ;;
    pg-spread|pg-hot) local i; for i in $(seq 1 "$NDUMPS"); do echo "$DATA/$1-$i.sql"; done ;;
    *) die "unknown series $1" ;;
  esac
}

# ---------------------------------------------------------------- bunker build
BUILD="$OUTDIR/build-release"
build_ok=""
release_build() {  # release_build TARGET: build one target of the release build
  if [ -z "$build_ok" ]; then
    build_ok=no
    command -v meson > /dev/null || bash "$ROOT/scripts/deps.sh" >> "$LOG" 2>&1 || true
    if [ ! -f "$BUILD/build.ninja" ]; then
      rm -rf "$BUILD"
      meson setup --buildtype=release "$BUILD" "$ROOT" >> "$LOG" 2>&1 || return 1
    fi
    build_ok=yes
  fi
  [ "$build_ok" = yes ] && ninja -C "$BUILD" "$1" >> "$LOG" 2>&1
}

VARIANTS=()
for t in $TOOLS; do
  case "$t" in
    bunker)
      BUNKER=${BENCH_BUNKER:-}
      if [ -z "$BUNKER" ]; then
        # No CLI yet (neither in the build files nor built in build/): no bunker rows.
        if ! grep -qs "executable('bunker'" "$ROOT/tools/meson.build" \
           && [ ! -x "$ROOT/build/tools/bunker" ]; then
          note "bunker skipped: the CLI does not exist yet (no build/tools/bunker)"
          continue
        fi
        log "building bunker (release) in $BUILD"
        if ! release_build tools/bunker || [ ! -x "$BUILD/tools/bunker" ]; then
          note "bunker skipped: the release build failed (see bench/out/run.log)"
          continue
        fi
        BUNKER="$BUILD/tools/bunker"
      fi
      # Smoke test of the CLI contract before spending time on it.
      smoke="$WORK/smoke"
      mkdir -p "$smoke"
      head -c 3000000 "$DATA/synth-text.txt" > "$smoke/in"
      if "$BUNKER" --repo "$smoke/r" --new-key-file "$smoke/k" init --chunk-size 64K >> "$LOG" 2>&1 \
         && "$BUNKER" --repo "$smoke/r" --key-file "$smoke/k" backup --stdin --name smoke \
              < "$smoke/in" >> "$LOG" 2>&1 \
         && "$BUNKER" --repo "$smoke/r" --key-file "$smoke/k" cat latest --name smoke \
              > "$smoke/out" 2>> "$LOG" \
         && cmp -s "$smoke/in" "$smoke/out"; then
        export BENCH_BUNKER="$BUNKER"
        meta "bunker" "$("$BUNKER" --version 2>/dev/null | head -1 || true) $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+dirty') ($BUNKER)"
        for cs in $CHUNK_SIZES; do VARIANTS+=("bunker-$cs"); done
      else
        note "bunker skipped: smoke test (init, backup --stdin, cat latest) failed; see bench/out/run.log"
      fi
      rm -rf "$smoke" ;;
    borg|borg-64K)
      if command -v borg > /dev/null; then VARIANTS+=("$t"); meta "$t" "$(borg --version)"
      else note "$t skipped: borg is not installed"; fi ;;
    restic)
      if command -v restic > /dev/null; then VARIANTS+=(restic); meta restic "$(restic version | cut -d' ' -f1-2)"
      else note "restic skipped: not installed"; fi ;;
    zstd-openssl)
      VARIANTS+=(zstd-openssl)
      meta zstd-openssl "$(zstd -V | sed 's/.*\(v[0-9.]*\).*/zstd \1/'), $(openssl version | cut -d' ' -f1-2)" ;;
    *) die "unknown tool $t (BENCH_TOOLS)" ;;
  esac
done
[ ${#VARIANTS[@]} -gt 0 ] || die "no tool to measure"

# Tool environments: everything inside WORK, nothing from the caller's setup.
unset RESTIC_REPOSITORY RESTIC_PASSWORD RESTIC_PASSWORD_COMMAND BORG_REPO BORG_PASSCOMMAND
export BORG_PASSPHRASE=bench-passphrase BORG_BASE_DIR="$WORK/borg-home"
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_DISPLAY_PASSPHRASE=no
export RESTIC_PASSWORD_FILE="$WORK/restic-password" RESTIC_CACHE_DIR="$WORK/restic-cache"
echo bench-password > "$RESTIC_PASSWORD_FILE"

# ---------------------------------------------------------------- measuring

# measure SERIES VARIANT OP INDEX BYTES CMD...: time one command; 1 if it failed
measure() {
  local series=$1 variant=$2 op=$3 idx=$4 bytes=$5 t0 t1 rc=0 secs rss cpu j0 j1 other
  shift 5
  sync
  echo "+ $*" >> "$LOG"
  j0=$(busy_jiffies)
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M %U %S' -o "$WORK/rss" "$@" >> "$LOG" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  j1=$(busy_jiffies)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
  read -r rss cpu < <(tail -n1 "$WORK/rss" 2>/dev/null | awk '{printf "%d %.2f\n", $1, $2 + $3}') || true
  # CPU time the whole machine was busy minus the tool's own: other processes (or the
  # hypervisor, as steal) competing with the measurement. Near 0 on a quiet machine.
  other=$(awk -v a="$j0" -v b="$j1" -v hz="$HZ" -v c="${cpu:-0}" \
    'BEGIN{o = (b - a) / hz - c; printf "%.2f", (o > 0 ? o : 0)}')
  if [ $rc -ne 0 ]; then
    rec "$series" "$variant" "$op" "$idx" "$bytes" "$secs" "${rss:-0}" "exit-$rc" "${cpu:-0}" "$other"
    log "$series $variant $op $idx FAILED (exit $rc); see bench/out/run.log"
    return 1
  fi
  rec "$series" "$variant" "$op" "$idx" "$bytes" "$secs" "${rss:-0}" ok "${cpu:-0}" "$other"
  log "$(printf '%-16s %-12s %-8s %-2s %8.1f MB %7.2f s %8.1f MB/s %6d MiB' "$series" \
    "$variant" "$op" "$idx" "$(awk -v b="$bytes" 'BEGIN{print b/1e6}')" "$secs" \
    "$(awk -v b="$bytes" -v s="$secs" 'BEGIN{print (s > 0 ? b/1e6/s : 0)}')" \
    "$(( ${rss:-0} / 1024 ))")"
}

run_series() {  # run_series SERIES VARIANT
  local series=$1 v=$2 repo="$WORK/$2-$1" files f i=0 n bytes logical=0 stored last
  local T="$HERE/tools.sh"
  mapfile -t files < <(series_files "$series")
  n=${#files[@]}
  if ! bash "$T" "$v" init "$repo" >> "$LOG" 2>&1; then
    rec "$series" "$v" init 0 0 0 0 fail 0 0; log "$series $v: init failed"; return 0
  fi
  for f in "${files[@]}"; do
    i=$((i + 1))
    bytes=$(stat -c %s "$f")
    logical=$((logical + bytes))
    measure "$series" "$v" backup "$i" "$bytes" bash "$T" "$v" backup "$repo" "$series" "$i" "$f" \
      || { rm -rf "$repo" "$repo.key"; return 0; }
  done
  stored=$(bash "$T" "$v" stored "$repo")
  rec "$series" "$v" stored 0 "$stored" 0 0 ok 0 0
  rec "$series" "$v" logical 0 "$logical" 0 0 ok 0 0
  if [[ $v == bunker-* ]]; then
    # bunker's own account, for the notes: stats --json and du of data/ alone
    local js
    js=$("$BENCH_BUNKER" --repo "$repo" --key-file "$repo.key" stats --json 2>> "$LOG" || true)
    rec "$series" "$v" stats-stored 0 "$(printf '%s' "$js" | python3 -c \
      'import json,sys; print(json.load(sys.stdin).get("stored_bytes", ""))' 2>/dev/null || true)" 0 0 ok 0 0
    rec "$series" "$v" data-dir 0 "$(du -sb "$repo/data" 2>/dev/null | cut -f1 || true)" 0 0 ok 0 0
  fi
  last=${files[$((n - 1))]}
  bytes=$(stat -c %s "$last")
  measure "$series" "$v" rebackup re "$bytes" bash "$T" "$v" backup "$repo" "$series" re "$last" \
    || true
  rm -f "$WORK/restored"
  if measure "$series" "$v" restore "$n" "$bytes" \
       bash "$T" "$v" restore "$repo" "$series" "$n" "$WORK/restored"; then
    if ! cmp -s "$last" "$WORK/restored"; then
      sed -i '$ s/\tok\t/\tmismatch\t/' "$RAW"
      log "$series $v: RESTORED DATA DIFFERS from $(basename "$last")"
    fi
  fi
  rm -f "$WORK/restored"
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$repo" "$repo.key"
}

meta date "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
meta machine "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr)"
meta disk "$(df -h --output=source,fstype "$OUTDIR" | tail -1 | tr -s ' ')"
meta scale "$SCALE: $NDUMPS dumps of ~$DUMP_MB MB per pg series, $SYNTH_MB MB synthetic files"
meta data "$DATA"
meta postgresql "$(/usr/lib/postgresql/15/bin/pg_dump --version)"

for s in $SERIES; do
  for v in "${VARIANTS[@]}"; do
    log "== $s: $v"
    run_series "$s" "$v"
  done
done

# ---------------------------------------------------------------- chunker row
if [ -n "${BENCH_CHUNKER:-}" ] || release_build bench/bench-chunker 2>/dev/null; then
  CHUNKER=${BENCH_CHUNKER:-$BUILD/bench/bench-chunker}
  if [ -x "$CHUNKER" ]; then
    log "running $(basename "$CHUNKER") $CHUNKER_MIB"
    if ! timeout 900 "$CHUNKER" "$CHUNKER_MIB" > "$CHUNKER_OUT" 2>> "$LOG"; then
      note "bench-chunker failed; see bench/out/run.log"
      rm -f "$CHUNKER_OUT"
    fi
  fi
else
  note "bench-chunker not available (release build of bench/bench-chunker failed or missing)"
fi

meta duration "$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f s", b-a}')"
python3 "$HERE/report.py" "$OUTDIR" "$DATA/manifest.tsv" > "$OUTDIR/results.md"
cat "$OUTDIR/results.md"
log "saved bench/out/results.md (raw numbers: bench/out/raw.tsv, log: bench/out/run.log)"
