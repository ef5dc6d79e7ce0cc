#!/bin/bash
# diskfull.sh: a repository on a 20 MB tmpfs. A backup that does not fit fails cleanly
# (non-zero exit, no signal, one error line naming the problem); the earlier snapshot
# still restores byte-exact, check is clean, no temporary file is left behind and a
# backup that fits works afterwards. A filler file then leaves little room at seven
# different sizes, so the failure hits packs, the index or the record.
. "$SRCDIR/tests/integration/lib.sh"
it_init diskfull

if [ "$(id -u)" != 0 ]; then
	echo "1..0 # SKIP needs root to mount a tmpfs"
	exit 0
fi
M=$T/mnt
mkdir "$M"
if ! mount -t tmpfs -o size=20m bunker-it-diskfull "$M"; then
	echo "1..0 # SKIP cannot mount a tmpfs"
	exit 0
fi
at_exit "umount '$M' || umount -l '$M'"

new_repo "$M/repo" || { echo "Bail out! init failed"; exit 1; }

mkdir -p "$T/in/small"
gen_file "$T/in/small/a.bin" 1 3000000
printf 'text\n' >"$T/in/small/b.txt"
bk backup --json "$T/in/small" >"$T/first.json"
t_is "$?" 0 "a small backup fits"
first=$(snap_id_of "$T/first.json")

# is_clean_failure RC DESC: non-zero, not killed by a signal, not a crash
clean_failure() {
	local rc=$1 desc=$2
	if [ "$rc" != 0 ] && [ "$rc" -lt 128 ]; then
		ok "$desc (exit $rc)"
	else
		not_ok "$desc" "exit $rc" "$(head -n 5 "$ERR")"
	fi
}
names_enospc() {
	if grep -q -i -E 'no space|space left|ENOSPC|disk full|file ?system (is )?full' "$ERR"; then
		ok "$1"
	else
		not_ok "$1" "stderr: $(head -n 3 "$ERR")"
	fi
}

# ---- a tree that does not fit ----
mkdir -p "$T/in/big"
gen_file "$T/in/big/r1.bin" 2 15000000
gen_file "$T/in/big/r2.bin" 3 15000000
t_rc 1 "backup of 30 MB of random data into 17 MB of free space fails (exit 1)" bk backup "$T/in/big"
clean_failure "$RC" "... cleanly, without a signal"
t_one_line_error "... with one error line"
names_enospc "... that names the problem (no space)"

mkdir "$T/out1"
t_true "the earlier snapshot restores" bk restore "$first" --target "$T/out1"
t_cmp "$T/in/small/a.bin" "$T/out1/small/a.bin" "... byte-exact"
t_same_tree "$T/in/small" "$T/out1/small" "... with all its metadata"
t_check_tolerant "check --read-data after the failed backup finds nothing but unindexed packs" --read-data
t_is "$(find "$M/repo/snapshots" -type f | wc -l)" 1 "the failed backup left no snapshot record"

# ---- a stream that does not fit ----
gen_bytes 4 40000000 >"$T/stream.bin"
t_rc 1 "backup --stdin of 40 MB into the full disk fails (exit 1)" \
	sh -c '"$BUNKER" -q backup --stdin --name s <"$1"' sh "$T/stream.bin"
clean_failure "$RC" "... cleanly, without a signal"
t_one_line_error "... with one error line"
names_enospc "... that names the problem (no space)"
printf 'tiny\n' | bk backup --stdin --name s2 >/dev/null
t_rc 1 "backup --stdin of 40 MB under a name that has a snapshot fails (exit 1)" \
	sh -c '"$BUNKER" -q backup --stdin --name s2 <"$1"' sh "$T/stream.bin"
clean_failure "$RC" "... cleanly, without a signal"
t_one_line_error "... with one error line"
names_enospc "... that names the problem (no space)"
t_check_tolerant "check --read-data after the failed streams finds nothing but unindexed packs" --read-data

# ---- running out at other points: leave little room with a filler file ----
# Depending on the room left, the failure hits a pack, the index or the record.
bad_exit=0
bad_check=0
bad_restore=0
bad_record=0
n=0
rcs=
for room in 20000 100000 400000 1500000 3000000 5500000 8000000; do
	n=$((n + 1))
	mkdir -p "$T/in/room$n"
	gen_file "$T/in/room$n/f.bin" $((100 + n)) 6000000
	rm -f "$M/filler"
	free=$(df -B1 --output=avail "$M" | tail -n 1)
	if [ "$free" -gt "$room" ]; then
		fallocate -l $((free - room)) "$M/filler" 2>/dev/null ||
			head -c $((free - room)) /dev/zero >"$M/filler" 2>/dev/null
	fi
	records=$(find "$M/repo/snapshots" -type f | wc -l)
	bk backup "$T/in/room$n" >/dev/null 2>"$T/room.err"
	rc=$?
	rcs="$rcs $room:$rc"
	if [ $rc -ge 128 ] || { [ $rc != 0 ] && [ "$(wc -l <"$T/room.err")" != 1 ]; }; then
		bad_exit=$((bad_exit + 1))
		diag "room $room: exit $rc: $(head -n 3 "$T/room.err")"
	fi
	if [ $rc != 0 ] && [ "$(find "$M/repo/snapshots" -type f | wc -l)" != "$records" ]; then
		bad_record=$((bad_record + 1))
		diag "room $room: the failed backup left a snapshot record"
	fi
	rm -f "$M/filler"
	bk check --read-data >"$T/room.check" 2>&1
	crc=$?
	if [ $crc != 0 ] && { [ $crc != 5 ] || ! unindexed_only "$T/room.check"; }; then
		bad_check=$((bad_check + 1))
		diag "room $room (backup exit $rc): check: $(head -n 3 "$T/room.check")"
	fi
	rm -rf "$T/out-room"
	if ! bk restore "$first" --target "$T/out-room" 2>/dev/null ||
		! cmp -s "$T/in/small/a.bin" "$T/out-room/small/a.bin"; then
		bad_restore=$((bad_restore + 1))
		diag "room $room: the first snapshot no longer restores byte-exact"
	fi
	if [ $rc = 0 ]; then
		rm -rf "$T/out-room"
		bk restore latest --name "files/room$n" --target "$T/out-room" 2>/dev/null
		cmp -s "$T/in/room$n/f.bin" "$T/out-room/room$n/f.bin" || {
			bad_restore=$((bad_restore + 1))
			diag "room $room: the backup that succeeded does not restore byte-exact"
		}
	fi
done
diag "room left: backup exit code:$rcs"
t_is "$bad_exit" 0 "with little room left at 7 different points, backups succeed or fail cleanly with one error line"
t_is "$bad_record" 0 "... a failed backup never leaves a snapshot record"
t_is "$bad_check" 0 "... check --read-data finds nothing but unindexed packs after each"
t_is "$bad_restore" 0 "... every snapshot still restores byte-exact"

# ---- nothing temporary is left behind, and what is stored is still usable ----
# (A failed backup may keep packs it committed to the index: they are not garbage but
# stored data a later backup reuses. Temporary files must go.)
left=$(find "$M/repo" -path "$M/repo/data" -prune -o -path "$M/repo/index" -prune -o \
	-type f -size +64k -print | grep -v -F "$M/repo/snapshots/" | head -n 5)
t_is "$left" "" "failed backups leave no temporary file behind"
t_is "$(find "$M/repo/tmp" -type f 2>/dev/null | wc -l)" 0 "tmp/ is empty after the failures"
diag "$(df -B1 --output=used,avail "$M" | tail -n 1 | awk '{print "tmpfs: " $1 " bytes used, " $2 " free"}')"
# a backup of data already stored needs only a tree and a record
bk backup --json --name files/small "$T/in/small" >"$T/again.json" 2>"$T/again.err"
t_is "$?" 0 "a backup of stored data succeeds after the failures" || diag "$(cat "$T/again.err")"
rm -rf "$T/out2"
bk restore "$(snap_id_of "$T/again.json")" --target "$T/out2"
t_same_tree "$T/in/small" "$T/out2/small" "... and restores byte-exact"
rm -rf "$T/out1"
bk restore "$first" --target "$T/out1"
t_cmp "$T/in/small/a.bin" "$T/out1/small/a.bin" "the first snapshot still restores byte-exact at the end"
t_check_tolerant "check --read-data at the end finds nothing but unindexed packs" --read-data

# ---- just too little room: the index commit is what fails ----
# Find the least room a 6 MB backup needs (to a page), then give it 1..6 pages less:
# the packs fit, the index commit or the last write does not.
rm -rf "$M/repo"
new_repo "$M/base" || { echo "Bail out! init failed"; exit 1; }
mkdir -p "$T/th/a" "$T/th/b"
gen_file "$T/th/a/f.bin" 200 100000
gen_file "$T/th/b/f.bin" 201 6000000
bk backup "$T/th/a" >/dev/null
mv "$M/base" "$T/th-base"
export BUNKER_REPO=$M/repo
attempt() { # ROOM: a fresh copy of the base repository, ROOM bytes free, back up b
	rm -rf "$M/repo" "$M/filler"
	cp -a "$T/th-base" "$M/repo"
	local free
	free=$(df -B1 --output=avail "$M" | tail -n 1)
	[ "$free" -le "$1" ] || fallocate -l $((free - $1)) "$M/filler"
	bk backup "$T/th/b" >/dev/null 2>"$T/th.err"
	ARC=$?
	rm -f "$M/filler"
}
lo=4096
hi=$((12 << 20))
attempt $hi
if [ $ARC != 0 ]; then
	not_ok "the 6 MB backup fits in 12 MB" "$(cat "$T/th.err")"
else
	while [ $((hi - lo)) -gt 4096 ]; do
		mid=$(((lo + hi) / 2 / 4096 * 4096))
		[ "$mid" -gt "$lo" ] || break
		attempt "$mid"
		if [ $ARC = 0 ]; then hi=$mid; else lo=$mid; fi
	done
	diag "the backup needs $hi bytes of room"
	bad_exit=0 bad_other=0 unindexed=0 not_named=0 bad_restore=0 msgs=
	for pages in 1 2 3 4 5 6; do
		attempt $((hi - pages * 4096))
		if [ $ARC -ge 128 ] || [ $ARC = 0 ] || [ "$(wc -l <"$T/th.err")" != 1 ]; then
			[ $ARC = 0 ] || bad_exit=$((bad_exit + 1))
			[ $ARC = 0 ] || diag "$pages pages short: exit $ARC: $(head -n 3 "$T/th.err")"
		fi
		grep -q -i -E 'no space|space left|ENOSPC' "$T/th.err" || [ $ARC = 0 ] || {
			not_named=$((not_named + 1))
			msgs="$msgs${msgs:+; }$(sed 's/.*: //' "$T/th.err")"
		}
		bk check --read-data >"$T/th.check" 2>&1
		crc=$?
		if [ $crc != 0 ]; then
			if [ $crc = 5 ] && unindexed_only "$T/th.check"; then
				unindexed=$((unindexed + 1))
			else
				bad_other=$((bad_other + 1))
				diag "$pages pages short: check exit $crc: $(head -n 3 "$T/th.check")"
			fi
		fi
		rm -rf "$T/th-out"
		bk restore latest --name files/a --target "$T/th-out" 2>/dev/null
		cmp -s "$T/th/a/f.bin" "$T/th-out/a/f.bin" || bad_restore=$((bad_restore + 1))
	done
	diag "1..6 pages short: $unindexed left unindexed packs; errors not naming the space: ${msgs:-none}"
	t_is "$bad_exit" 0 "1..6 pages short of room: each backup fails cleanly, one error line, no signal"
	t_is "$bad_other" 0 "... check --read-data finds nothing but unindexed packs"
	t_is "$bad_restore" 0 "... the earlier snapshot restores byte-exact"
	t_is "$unindexed" 0 "... check --read-data exits 0 after each (no pack left outside the index)"
	t_is "$not_named" 0 "... each error names the lack of space"
fi

done_testing
