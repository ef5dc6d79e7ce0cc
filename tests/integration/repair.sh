#!/bin/bash
# repair.sh: the index is a cache. After rm -rf REPO/index, `bunker repair index`
# rebuilds it from the packs: every snapshot restores byte-exact, check is clean,
# stats are what they were and the next backup deduplicates against the old data. A
# stale index is reported by check and repaired; a garbage index file is rebuilt; a
# damaged pack is reported by repair without losing the others; packs removed by
# hand leave the index at its rebuild.
. "$SRCDIR/tests/integration/lib.sh"
it_init repair

new_repo "$T/repo" || { echo "Bail out! init failed"; exit 1; }
R=$T/repo

jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(str(d[k]) for k in sys.argv[1:]))' "$@"; }

S=$T/in/tree
mkdir -p "$S/sub" "$S/empty"
gen_file "$S/r1.bin" 1 12000000
gen_file "$S/sub/r2.bin" 2 3000000
for i in $(seq 1 20000); do printf 'row %d of the table\n' "$i"; done >"$S/sub/table.txt"
ln -s sub/table.txt "$S/link"
chmod 0640 "$S/sub/r2.bin"
touch -d '2010-10-10 10:10:10.5 UTC' "$S/r1.bin"
bk backup --json "$S" >"$T/s1.json"
S1=$(snap_id_of "$T/s1.json")
tree_manifest "$T/in" >"$T/m1"
gen_file "$T/stream.bin" 3 7000000
bk backup --json --stdin --name stream <"$T/stream.bin" >"$T/s2.json"
S2=$(snap_id_of "$T/s2.json")
cp -a "$R/index" "$T/stale-index"           # the index as it was before snapshot 3
printf 'changed\n' >>"$S/sub/table.txt"
gen_file "$S/r3.bin" 4 2000000
bk backup --json "$S" >"$T/s3.json"
S3=$(snap_id_of "$T/s3.json")
tree_manifest "$T/in" >"$T/m3"
t_is "${#S1}${#S2}${#S3}" 646464 "three snapshots made"

bk stats --json >"$T/stats.before"
before=$(jget snapshots packs blobs stored_bytes <"$T/stats.before")
diag "before: snapshots packs blobs stored_bytes = $before"

verify_all() { # PREFIX: every snapshot restores byte-exact
	local p=$1
	rm -rf "$T/rr"
	bk restore "$S1" --target "$T/rr" 2>"$T/rr.err"
	t_manifest "$T/m1" "$T/rr" "$p snapshot 1 restores byte-exact" || diag "$(cat "$T/rr.err")"
	rm -rf "$T/rr"
	bk restore "$S3" --target "$T/rr" 2>"$T/rr.err"
	t_manifest "$T/m3" "$T/rr" "$p snapshot 3 restores byte-exact" || diag "$(cat "$T/rr.err")"
	bk cat "$S2" | cmp -s - "$T/stream.bin"
	t_is "$?" 0 "$p the stream reads back byte-exact"
}

# ---- rm -rf index ----
rm -rf "$R/index"
t_rc 0 "repair index after rm -rf index exits 0" bk repair index
t_true "... and says how many packs and blobs it found" grep -q -E "[0-9]+ packs, [0-9]+ blobs" "$OUT"
t_true "the index is back" test -d "$R/index"
t_is "$(bk stats --json | jget snapshots packs blobs stored_bytes)" "$before" \
	"stats after the rebuild: same snapshots, packs, blobs and stored bytes"
verify_all "after rm -rf index and repair:"
t_rc 0 "check --read-data is clean after the rebuild" bk check --read-data

s_before=$(bk stats --json | jget stored_bytes)
bk backup --json "$S" >"$T/s4.json"
t_is "$?" 0 "the next backup of the same tree succeeds"
s_after=$(bk stats --json | jget stored_bytes)
if [ $((s_after - s_before)) -lt 200000 ]; then
	ok "... and deduplicates against the rebuilt index (+$((s_after - s_before)) bytes for 17 MB)"
else
	not_ok "... and deduplicates against the rebuilt index" "stored bytes grew by $((s_after - s_before))"
fi
bk backup --stdin --name stream <"$T/stream.bin" >/dev/null
s_after2=$(bk stats --json | jget stored_bytes)
if [ $((s_after2 - s_after)) -lt 100000 ]; then
	ok "the stream again adds almost nothing (+$((s_after2 - s_after)) bytes for 7 MB)"
else
	not_ok "the stream again adds almost nothing" "stored bytes grew by $((s_after2 - s_after))"
fi

# a new backup after the rebuild, with new data, restores
gen_file "$S/r5.bin" 5 1000000
bk backup --json "$S" >"$T/s5.json"
rm -rf "$T/rr"
bk restore "$(snap_id_of "$T/s5.json")" --target "$T/rr"
t_same_tree "$T/in" "$T/rr" "a backup with new data after the rebuild restores byte-exact"
rm "$S/r5.bin"
t_rc 0 "check --read-data is clean" bk check --read-data

# ---- repair twice is harmless ----
bk stats --json | jget packs blobs stored_bytes >"$T/st1"
t_rc 0 "repair index on a healthy index exits 0" bk repair index
t_is "$(bk stats --json | jget packs blobs stored_bytes)" "$(cat "$T/st1")" "... and changes nothing"

# ---- a repair killed in the middle leaves the index as it was ----
# (the rebuild is one write transaction: before, the index was emptied first and
# filled a pack at a time, and a repair killed meanwhile left restores failing)
if [ -n "${IO_FAULT_LIB:-}" ]; then
	LAST=$(find "$R/data" -type f -printf '%f\n' | sort | tail -n 1)
	env LD_PRELOAD="$IO_FAULT_LIB" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		IO_FAULT=kill-read IO_FAULT_PATH="$LAST" "$BUNKER" -q repair index >/dev/null 2>&1
	t_is "$?" 137 "repair index killed (SIGKILL) as it reads a pack's trailer"
	t_is "$(bk stats --json | jget packs blobs stored_bytes)" "$(cat "$T/st1")" "... the index is as it was"
	t_rc 0 "... check is clean" bk check
	verify_all "after a killed repair:"
else
	skip "a repair killed in the middle: io-fault library not built"
fi

# ---- a stale index (an old copy) ----
rm -rf "$R/index"
cp -a "$T/stale-index" "$R/index"
t_rc 5 "a stale index (missing the packs of later backups): check exits 5" bk check
t_true "... and says which packs the index lacks" grep -q -E 'data/[0-9a-f]{2}/[0-9a-f]{64}' "$OUT"
t_rc 0 "repair index fixes the stale index" bk repair index
t_rc 0 "... check --read-data is clean" bk check --read-data
verify_all "after repairing a stale index:"

# ---- garbage in the index file ----
for f in "$R"/index/*.mdb; do head -c 65536 /dev/urandom >"$f"; done
t_rc 0 "repair index replaces an index file full of garbage" bk repair index
verify_all "after repairing a garbage index:" 2>/dev/null
t_rc 0 "... check --read-data is clean" bk check --read-data
if ! bk check >/dev/null 2>&1; then # the workaround, so the rest can go on
	rm -rf "$R/index"
	bk repair index >/dev/null
fi

# ---- an empty index directory ----
rm -rf "$R/index"
mkdir "$R/index"
t_rc 0 "repair index with an empty index directory" bk repair index
t_is "$(bk stats --json | jget packs stored_bytes)" "$(cut -d' ' -f1,3 "$T/st1")" "... stats match again"

# ---- a damaged pack during the rebuild ----
cp -a "$R" "$T/damaged"
export BUNKER_REPO=$T/damaged
P=$(find "$T/damaged/data" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
PID=$(basename "$P")
truncate -s $(($(file_size "$P") - 100)) "$P"
rm -rf "$T/damaged/index"
t_rc 5 "repair index with a truncated pack exits 5" bk repair index
t_true "... and names the pack" grep -q -F "$PID" "$OUT" "$ERR"
# the other packs are indexed all the same (a repair that gave up at the damaged
# pack left an empty index, and every snapshot unreadable)
npacks=$(find "$T/damaged/data" -type f | wc -l)
t_is "$(bk stats --json | jget packs)" $((npacks - 1)) "... and indexes the $((npacks - 1)) other packs"
t_rc 5 "check afterwards exits 5 (the damage is still reported)" bk check
bk cat "$S2" >"$T/cat.out" 2>"$T/cat.err"
rc=$?
n=$(file_size "$T/cat.out")
if [ $rc = 0 ]; then
	t_cmp "$T/stream.bin" "$T/cat.out" "the stream, in another pack, still reads back byte-exact"
else
	t_true "whatever cat wrote is correct ($n bytes, exit $rc)" cmp -s -n "$n" "$T/cat.out" "$T/stream.bin"
	t_true "... and it fails at the damaged pack only" grep -q -F "$PID" "$T/cat.err" ||
		diag "$(cat "$T/cat.err")"
fi
export BUNKER_REPO=$R

# ---- an index naming packs that are gone ----
# (a backup's packs and its record removed by hand: the rebuild starts afresh, so
# the index no longer names them; a file in data/ that is no pack is passed over)
bk stats --json | jget packs blobs stored_bytes >"$T/st2"
find "$R/data" -type f | sort >"$T/packs.before"
gen_bytes 5 2000000 | bk backup --json --stdin --name gone >"$T/gone.json"
find "$R/data" -type f | sort | comm -13 "$T/packs.before" - | xargs rm -f
rm -f "$R/snapshots/$(snap_id_of "$T/gone.json")"
printf 'not a pack\n' >"$R/data/README"
t_rc 5 "an index naming packs that are gone: check exits 5" bk check
t_rc 0 "repair index drops them" bk repair index
t_is "$(bk stats --json | jget packs blobs stored_bytes)" "$(cat "$T/st2")" "... stats are what they were"
rm -f "$R/data/README" # (which check reports)
t_rc 0 "... check is clean" bk check

done_testing
