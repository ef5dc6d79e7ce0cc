#!/usr/bin/env bash
# Installs what is missing, builds bunker twice (plain, and with AddressSanitizer
# and UBSan), runs the whole suite in both and ends with "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

pass=0; fail=0
run_suite() { # build-dir meson-args...
  local dir=$1; shift
  if [ ! -d "$dir" ]; then meson setup "$dir" "$@" >/dev/null || return 1; fi
  ninja -C "$dir" >/dev/null || { ninja -C "$dir" | tail -30; return 1; }
  meson test -C "$dir" --print-errorlogs --num-processes 2 --no-rebuild > "$dir/suite.log" 2>&1
  cat "$dir/suite.log" | grep -E '^ *[0-9]+/[0-9]+ ' || true
  local ok f
  ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$dir/suite.log" | tail -1)
  f=$(grep -E '^(Fail|Unexpected Pass|Timeout): ' "$dir/suite.log" | awk '{s+=$NF} END {print s+0}')
  if [ "${f:-0}" -gt 0 ]; then grep -B2 -A40 -E 'FAIL|TIMEOUT' "$dir/suite.log" | head -200; fi
  pass=$((pass + ${ok:-0})); fail=$((fail + ${f:-0}))
}
run_suite build || fail=$((fail + 1))
# The sanitizer build is slower: the heaviest integration tests scale down there.
BUNKER_TEST_QUICK=1 run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false || fail=$((fail + 1))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
