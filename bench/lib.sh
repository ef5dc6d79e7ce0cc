# bench/lib.sh: shell helpers shared by bench/run.sh and bench/pg-bench.sh.
# Needs $BENCH_TAG (the prefix of log lines), $LOG, and $NOTES, $META and $RAW before
# note, meta and rec are used.

log() { printf '[%s %s] %s\n' "$BENCH_TAG" "$(date +%T)" "$*" | tee -a "$LOG" >&2; }
die() { log "error: $*"; exit 1; }
note() { log "note: $*"; printf '%s\n' "$*" >> "$NOTES"; }
meta() { printf '%s\t%s\n' "$1" "$2" >> "$META"; }  # meta KEY VALUE: a report header line
rec() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RAW"; }  # one measurement

HZ=$(getconf CLK_TCK)
busy_jiffies() {  # all CPUs' busy time so far: user nice system irq softirq steal
  awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
ensure_pkgs() {  # ensure_pkgs PKG... : apt-get install whatever is missing
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq "${missing[@]}" >> "$LOG" 2>&1 \
    || { $SUDO apt-get update -qq >> "$LOG" 2>&1 \
         && $SUDO apt-get install -y -qq "${missing[@]}" >> "$LOG" 2>&1; }
}
