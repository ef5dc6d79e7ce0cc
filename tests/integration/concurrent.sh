#!/bin/bash
# concurrent.sh: several bunker processes on one repository at once: backups of
# different and of overlapping (new to both) data, a restore, cat and check meanwhile.
# All succeed, check --read-data is clean, and every snapshot restores byte-exact.
. "$SRCDIR/tests/integration/lib.sh"
it_init concurrent

new_repo "$T/repo" || { echo "Bail out! init failed"; exit 1; }

# bg NAME CMD...: start CMD in the background, output in $T/NAME.{out,err}
declare -A PIDS
bg() {
	local name=$1
	shift
	"$@" >"$T/$name.out" 2>"$T/$name.err" &
	PIDS[$name]=$!
}
# wait_ok NAME DESC: ok when the background job NAME exited 0
wait_ok() {
	wait "${PIDS[$1]}"
	local rc=$?
	if [ $rc = 0 ]; then
		ok "$2"
	else
		not_ok "$2" "exit $rc" "$(head -n 5 "$T/$1.err")"
	fi
}

# A tree that is already stored, for the readers.
mkdir -p "$T/old/base"
gen_file "$T/old/base/r.bin" 100 40000000
for i in $(seq 1 30000); do printf 'old row %d\n' "$i"; done >"$T/old/base/t.txt"
bk backup --json "$T/old/base" >"$T/old.json"
old=$(snap_id_of "$T/old.json")
t_is "${#old}" 64 "initial snapshot"

# ---- round 1: two backups (unique + shared data, new to both) and a restore ----
mkdir -p "$T/a/data" "$T/b/data"
gen_file "$T/a/data/unique-a.bin" 1 30000000
gen_file "$T/b/data/unique-b.bin" 2 30000000
gen_file "$T/a/data/shared.bin" 3 30000000
cp "$T/a/data/shared.bin" "$T/b/data/shared.bin"
gen_file "$T/a/data/shared-prefix.bin" 4 10000000
{ cat "$T/a/data/shared-prefix.bin"; gen_bytes 5 5000000; } >"$T/b/data/shared-prefix.bin"
cp "$T/old/base/r.bin" "$T/b/data/old-copy.bin"

bg ba bk backup --json --name a "$T/a/data"
bg bb bk backup --json --name b "$T/b/data"
bg rs bk restore "$old" --target "$T/r1"
bg ct sh -c "\"$BUNKER\" -q cat $old base/r.bin | sha256sum"
wait_ok ba "backup A succeeds while B, a restore and a cat run"
wait_ok bb "backup B (overlapping A) succeeds at the same time"
wait_ok rs "restore succeeds while two backups run"
wait_ok ct "cat succeeds while two backups run"
t_same_tree "$T/old" "$T/r1" "the concurrent restore is byte-exact"
t_is "$(cut -c1-64 "$T/ct.out")" "$(sha256sum <"$T/old/base/r.bin" | cut -c1-64)" "the concurrent cat is byte-exact"
snap_a=$(snap_id_of "$T/ba.out")
snap_b=$(snap_id_of "$T/bb.out")

# ---- round 2: the same stream twice at once, a tree, and check as a reader ----
gen_file "$T/stream.bin" 6 40000000
bg s1 sh -c "\"$BUNKER\" -q backup --json --stdin --name s1 < \"$T/stream.bin\""
bg s2 sh -c "\"$BUNKER\" -q backup --json --stdin --name s2 < \"$T/stream.bin\""
mkdir -p "$T/c/data"
gen_file "$T/c/data/c.bin" 7 20000000
cp "$T/b/data/unique-b.bin" "$T/c/data/b-copy.bin"
bg bc bk backup --json --name c "$T/c/data"
# check, again and again while the three write: a pack that is renamed but not yet
# indexed is all it may see besides what is committed
checks=0
bad_checks=0
unindexed_checks=0
while kill -0 "${PIDS[s1]}" 2>/dev/null || kill -0 "${PIDS[s2]}" 2>/dev/null ||
	kill -0 "${PIDS[bc]}" 2>/dev/null; do
	bk check >"$T/ck.out" 2>&1
	rc=$?
	checks=$((checks + 1))
	if [ $rc = 5 ] && unindexed_only "$T/ck.out"; then
		unindexed_checks=$((unindexed_checks + 1))
	elif [ $rc != 0 ]; then
		bad_checks=$((bad_checks + 1))
		diag "check during the backups: exit $rc: $(head -n 3 "$T/ck.out")"
	fi
done
wait_ok s1 "stdin backup 1 succeeds"
wait_ok s2 "stdin backup 2 of the same bytes succeeds at the same time"
wait_ok bc "a tree backup succeeds at the same time"
diag "$checks checks ran during the backups, $unindexed_checks saw packs not yet indexed"
t_is "$bad_checks" 0 "check during the backups never finds a problem other than packs not yet indexed"

# ---- round 3: four small writers at once ----
for i in 1 2 3 4; do
	mkdir -p "$T/w$i/d"
	gen_file "$T/w$i/d/own.bin" $((10 + i)) 3000000
	gen_file "$T/w$i/d/common.bin" 20 3000000
	printf '%s\n' "$i" >"$T/w$i/d/n.txt"
done
for i in 1 2 3 4; do bg w$i bk backup --json --name "w$i" "$T/w$i/d"; done
for i in 1 2 3 4; do wait_ok w$i "small writer $i of 4 succeeds"; done

# ---- afterwards ----
t_rc 0 "check --read-data is clean" bk check --read-data
t_is "$(bk snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 10 \
	"all 10 snapshots are listed"

# A writer's temporary file among the packs (where a put makes it when the
# repository has no tmp/) is an object in the making, not damage: check, run
# meanwhile, lists past it (found by a mutation audit: with the ".tmp" filter of
# the local backend's listing gone, no test failed)
bucket=$(find "$T/repo/data" -mindepth 1 -maxdepth 1 -type d | head -n 1)
printf 'partial' >"$bucket/$(basename "$(find "$bucket" -type f | head -n 1)").tmp.0123456789ab"
t_rc 0 "a writer's temporary file in a pack's directory: check is clean" bk check
t_true "... (no problem reported)" grep -q "^no problems found" "$OUT"
rm -f "$bucket"/*.tmp.0123456789ab

restore_same() { # SNAP SRCDIR-PARENT DESC
	rm -rf "$T/rr"
	if ! bk restore "$1" --target "$T/rr" 2>"$T/rr.err"; then
		not_ok "$3" "restore failed: $(head -n 3 "$T/rr.err")"
		return
	fi
	t_same_tree "$2" "$T/rr" "$3"
}
restore_same "$snap_a" "$T/a" "snapshot A restores byte-exact"
restore_same "$snap_b" "$T/b" "snapshot B restores byte-exact"
restore_same "$(snap_id_of "$T/bc.out")" "$T/c" "snapshot C restores byte-exact"
for i in 1 2 3 4; do
	restore_same "$(snap_id_of "$T/w$i.out")" "$T/w$i" "small writer $i's snapshot restores byte-exact"
done
for s in s1 s2; do
	bk cat "$(snap_id_of "$T/$s.out")" | cmp -s - "$T/stream.bin"
	t_is "$?" 0 "stream $s reads back byte-exact"
done

# A writer stopped while it holds the index's write transaction (SIGSTOP in its
# commit, say) does not hold up the others' opens: readers read on (every open took
# a write transaction, and each waited for it: found by review).
"$HOLD_WRITER" "$T/repo/index" >"$T/hold.out" 2>"$T/hold.err" &
hold=$!
for i in $(seq 1 100); do grep -q held "$T/hold.out" 2>/dev/null && break; sleep 0.1; done
t_true "a process holds the index's write transaction" grep -q held "$T/hold.out"
t_rc 0 "snapshots meanwhile" timeout 20 "$BUNKER" -q snapshots
t_rc 0 "cat meanwhile" timeout 20 sh -c '"$BUNKER" -q cat "$1" | cmp -s - "$2"' - \
	"$(snap_id_of "$T/s1.out")" "$T/stream.bin"
kill "$hold" 2>/dev/null
wait "$hold" 2>/dev/null

# A command holds LMDB's shared lock on index/lock.mdb (fcntl, in /proc/locks)
# for as long as it has the index open: without it the next process to open the
# index takes itself for the only one and resets the lock table under the others'
# transactions (found by a stress test: root's open gave the index's files to
# their owner through descriptors it then closed, which dropped the lock, and
# concurrent backups lost index entries).
chmod 0640 "$T/repo/index/lock.mdb" # (a mode the open mends, through a descriptor)
mkfifo "$T/slow"
"$BUNKER" -q backup --stdin --name slow <"$T/slow" >"$T/slow.out" 2>"$T/slow.err" &
slow=$!
exec 7>"$T/slow"
ino=$(stat -c %i "$T/repo/index/lock.mdb")
held=no
for i in $(seq 1 100); do
	awk -v p="$slow" -v i=":$ino\$" '$2 == "POSIX" && $5 == p && $6 ~ i' /proc/locks | grep -q . &&
		{ held=yes; break; }
	sleep 0.1
done
t_is "$held" yes "a running command holds LMDB's lock on index/lock.mdb" ||
	diag "$(cat /proc/locks)"
printf 'slow data\n' >&7
exec 7>&-
wait "$slow"
t_is "$?" 0 "... and completes"
t_true "... and check is clean" "$BUNKER" -q check

# A command waiting in its open for LMDB's lock (the first process to open holds
# it alone until its open ends: one stopped there, SIGSTOP or a stalled disk, holds
# every other) keeps its private directory of links: another command's sweep of
# those a minute old, which killed processes left, takes a live one's only when
# no process holds it (found by review: the waiting backup's directory was swept,
# and it failed 'index ...: open: No such file or directory' once the lock was free).
python3 -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
' "$T/repo/index/lock.mdb" 5 >"$T/excl.out" &
excl=$!
for i in $(seq 1 100); do grep -q held "$T/excl.out" && break; sleep 0.05; done
printf 'waiting data\n' >"$T/waiting.in"
"$BUNKER" -q backup --stdin --name waiting <"$T/waiting.in" >"$T/waiting.out" 2>"$T/waiting.err" &
waiting=$!
priv=
for i in $(seq 1 100); do
	priv=$(ls -d "$T/repo/index/.bunker-open."* 2>/dev/null | head -n 1)
	[ -n "$priv" ] && break
	sleep 0.05
done
touch -h -d '2 minutes ago' "$priv" # (as it is after a minute's wait)
t_rc 0 "another command runs while a backup waits in its open for LMDB's lock" \
	"$BUNKER" -q snapshots
wait "$waiting"
rc=$?
t_is "$rc" 0 "... and the waiting backup completes once the lock is free" ||
	diag "$(cat "$T/waiting.err")"
wait "$excl"
t_true "... and check is clean" "$BUNKER" -q check
t_is "$(ls -A "$T/repo/index")" "$(printf 'data.mdb\nlock.mdb')" "... no private directory left"

done_testing
