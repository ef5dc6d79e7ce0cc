#!/bin/bash
# dedup.sh: data already stored costs (almost) nothing again, whether it comes back as
# the same tree, under another name or as a stdin stream; a 100 MB random file with one
# byte inserted (at the start, in the middle) or appended to adds under 1 MB.
. "$SRCDIR/tests/integration/lib.sh"
it_init dedup

new_repo "$T/repo" || { echo "Bail out! init failed"; exit 1; }

stored() { # stored_bytes from stats --json
	bk stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])'
}
data_bytes() { du -sb "$BUNKER_REPO/data" | cut -f1; }

# grows OLD NEW LIMIT DESC: ok when NEW-OLD < LIMIT
grows_under() {
	local old=$1 new=$2 limit=$3 desc=$4
	if [ -z "$old" ] || [ -z "$new" ]; then
		not_ok "$desc" "no measurement (old='$old' new='$new')"
	elif [ $((new - old)) -lt "$limit" ]; then
		ok "$desc (+$((new - old)) bytes)"
	else
		not_ok "$desc" "grew by $((new - old)) bytes, limit $limit"
	fi
}

# ---- the same tree again ----
S=$T/src
mkdir -p "$S/a" "$S/b"
gen_file "$S/a/r1.bin" 1 20000000
gen_file "$S/a/r2.bin" 2 9000000
for i in $(seq 1 60000); do printf 'row %d\tvalue %d\tsome text to compress\n' "$i" $((i * 7 % 1000)); done >"$S/b/table.txt"
cp "$S/a/r2.bin" "$S/b/r2-copy.bin"
total=$(du -sb --apparent-size "$S" | cut -f1)

s0=$(stored)
t_true "first backup" bk backup "$S"
s1=$(stored)
d1=$(data_bytes)
if [ $((s1 - s0)) -lt $((total * 98 / 100)) ]; then
	ok "a copy of a file inside one backup is stored once ($((s1 - s0)) of $total bytes)"
else
	not_ok "a copy of a file inside one backup is stored once" "stored $((s1 - s0)) for $total bytes with a 9 MB duplicate"
fi

t_true "second backup of the same tree" bk backup "$S"
grows_under "$s1" "$(stored)" $((total / 100)) "same tree again: stats stored_bytes grows by under 1%"
grows_under "$d1" "$(data_bytes)" $((total / 100)) "same tree again: du of data/ grows by under 1%"

s2=$(stored)
d2=$(data_bytes)
t_true "same tree under another name" bk backup --name other "$S"
grows_under "$s2" "$(stored)" $((total / 100)) "same tree under another name adds under 1%"

s3=$(stored)
bk backup --stdin --name stream <"$S/a/r1.bin" >"$T/stream.out"
t_is "$?" 0 "a stored file again as a stdin stream"
grows_under "$s3" "$(stored)" $((20000000 / 100)) "the same bytes as a stream add under 1%"
bk cat latest --name stream | cmp -s - "$S/a/r1.bin"
t_is "$?" 0 "the deduplicated stream reads back byte-exact"

# the per-snapshot accounting agrees
bk backup --json "$S" >"$T/again.json"
new=$(sed -n 's/.*"stored_bytes":\([0-9]*\).*/\1/p' "$T/again.json")
grows_under 0 "${new:-999999999}" $((total / 100)) "backup --json reports under 1% new bytes for seen data"

# ---- 100 MB random, one byte inserted ----
F=$T/big/file.bin
mkdir -p "$T/big"
gen_file "$F" 7 100000000
t_true "backup of a 100 MB random file" bk backup --name big "$T/big"
b0=$(stored)
db0=$(data_bytes)

{ printf 'X'; gen_bytes 7 100000000; } >"$F"
t_true "backup after inserting one byte at the start" bk backup --name big "$T/big"
grows_under "$b0" "$(stored)" 1000000 "one byte inserted at the start adds under 1 MB (stats)"
grows_under "$db0" "$(data_bytes)" 1000000 "one byte inserted at the start adds under 1 MB (du data/)"
bk cat latest --name big big/file.bin | cmp -s - "$F"
t_is "$?" 0 "the shifted file reads back byte-exact"

b1=$(stored)
{ printf 'X'; gen_bytes 7 50000000; printf 'Y'; gen_bytes 7 100000000 | tail -c 50000000; } >"$F"
t_true "backup after inserting one byte in the middle" bk backup --name big "$T/big"
grows_under "$b1" "$(stored)" 1000000 "one byte inserted in the middle adds under 1 MB"

b2=$(stored)
printf 'Z' >>"$F"
t_true "backup after appending one byte" bk backup --name big "$T/big"
grows_under "$b2" "$(stored)" 1000000 "one byte appended adds under 1 MB"
bk cat latest --name big big/file.bin | cmp -s - "$F"
t_is "$?" 0 "the latest version reads back byte-exact"

b3=$(stored)
gen_bytes 7 100000000 | bk backup --stdin --name big-stream >/dev/null
grows_under "$b3" "$(stored)" 1000000 "the original 100 MB again as a stream adds under 1 MB"

# the first version is still intact
first=$(bk snapshots --name big --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
bk cat "$first" big/file.bin | cmp -s - <(gen_bytes 7 100000000)
t_is "$?" 0 "the first version of the 100 MB file still reads back byte-exact"

t_rc 0 "check --read-data is clean" bk check --read-data

done_testing
