#!/usr/bin/env bash
# The main job on an embedded default: installs what is missing, builds, creates a
# local repository, backs up real data twice (the second time slightly changed),
# prints what dedup saved, restores and verifies byte-exact.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
B=$PWD/build/tools/bunker

work=$(mktemp -d /tmp/bunker-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export BUNKER_REPO=$work/repo BUNKER_KEY_FILE=$work/key

# Real data: system headers and documentation, copied so we can change them.
mkdir -p "$work/data"
cp -a /usr/include /usr/share/doc "$work/data/"
du -sh "$work/data" | awk '{print "data to back up: " $1}'

$B --new-key-file "$BUNKER_KEY_FILE" init
$B backup --name demo "$work/data"
du -sb "$BUNKER_REPO/data" | awk '{printf "repository after the first backup: %.1f MB\n", $1/1e6}'

# A day of change: a few files edited, one added, one removed.
for f in $(find "$work/data/include" -name "*.h" | sort | sed -n 1,20p); do echo "/* edited */" >> "$f"; done
head -c 1000000 /dev/urandom > "$work/data/new-file.bin"
rm -f "$(find "$work/data/doc" -type f | sort | sed -n 1p)"
before=$(du -sb "$BUNKER_REPO/data" | cut -f1)
$B backup --name demo "$work/data"
after=$(du -sb "$BUNKER_REPO/data" | cut -f1)
logical=$(du -sb --apparent-size "$work/data" | cut -f1)
echo "second backup: $logical bytes of data, $((after - before)) bytes added to the repository" \
     "($(awk -v a=$((after - before)) -v l="$logical" 'BEGIN{printf "%.1f", 100*(1-a/l)}')% saved by dedup and compression)"
$B snapshots
$B stats

$B restore latest --name demo --target "$work/restored"
if diff -r --no-dereference "$work/data" "$work/restored/data" >/dev/null; then
  echo "restore verified: byte-exact"
else
  echo "restore differs from the source" >&2
  exit 1
fi
$B check --read-data
