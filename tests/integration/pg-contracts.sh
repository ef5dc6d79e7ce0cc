#!/bin/bash
# pg-contracts.sh: the archive_command and restore_command contracts of
# `bunker pg wal-push` and `bunker pg wal-fetch` (DESIGN.md invariant 2, PITFALLS.md),
# case by case, on real segments of real clusters:
#   push: the same name and bytes again exits 0 (also from another path); the same
#   name with other bytes fails with one line and the archive keeps the first copy; a
#   segment of another system is refused for the cluster and accepted under another
#   --cluster; a missing file, a short file, a segment under another segment's name
#   and a file with a non-WAL name fail; a failed fsync fails a push, and a file cut
#   while it is read is refused (io-fault.c);
#   two pushes of one name with different bytes at once: one exits 0, the other 1.
#   fetch: a missing segment or .history exits 3, silently, leaving nothing at DEST (no
#   temporary file either), as when the cluster has no WAL archived yet and no base
#   backup; every other failure (a cluster with no WAL here, no such
#   repository, a wrong key, a bad call or option, packs gone, blobs not in the index,
#   a damaged cluster record) exits 128, so that PostgreSQL aborts recovery
#   rather than end it early; a fetch replaces an existing DEST with the exact bytes;
#   a DEST in a missing directory fails, an empty DEST is refused. pg info on that
#   damaged cluster record exits 5, naming it, not 0.
#   kill -9 of a push at several moments: the name is then either absent or complete,
#   a retry exits 0, the file fetches byte-exact and `bunker check` is clean.
. "$SRCDIR/tests/integration/lib-pitr.sh"
pitr_init pg-contracts

S=$SRV/segs F=$SRV/fetch
mkdir -p "$S" "$F"
chown postgres: "$S" "$F"

# ---- cluster A: a few real segments ----
pg_start "$T/a" || { echo "Bail out! PostgreSQL did not start"; exit 1; }
pg_conf_set wal_keep_size 1GB
pg_reload
pg_sql "create table t as select g, md5(g::text) from generate_series(1, 20000) g" >/dev/null
s1=$(pitr_switch_wal)
pg_sql "insert into t select g, md5(g::text) from generate_series(1, 20000) g" >/dev/null
s2=$(pitr_switch_wal)
s3=$(pitr_switch_wal)
sysid_a=$(pg_sysid)
for s in "$s1" "$s2" "$s3"; do cp "$PG_DATA/pg_wal/$s" "$S/$s"; done
pg_stop
chown -R postgres: "$S"
diag "cluster A ($sysid_a): $s1 $s2 $s3"

# ---- push contracts ----
t_rc 0 "wal-push $s2" bkp pg wal-push "$S/$s2"
t_rc 0 "wal-push $s3" bkp pg wal-push "$S/$s3"
# a failed fsync fails the push, never trusted (PITFALLS.md): io-fault.c fails the
# fsyncs of one record, for a first push and for a repeated one, which syncs the
# record it finds (its writer may have died before syncing it)
if [ -f "${IO_FAULT_LIB:-}" ]; then
	# bkf PATH FILE: wal-push FILE, every fsync of a path holding PATH failing
	bkf() { pg_as_server env LD_PRELOAD="$IO_FAULT_LIB" ASAN_OPTIONS=verify_asan_link_order=0 \
		IO_FAULT=fsync IO_FAULT_PATH="$1" "$BUNKER" -q --repo "$REPO" --key-file "$KEY" \
		pg wal-push "$2"; }
	t_rc 1 "wal-push of $s1 whose packs' fsync fails: exit 1" bkf "$REPO/data/" "$S/$s1"
	t_true "... naming the fsync" grep -q "fsync .*Input/output error" "$ERR" || diag "$(cat "$ERR")"
	# (the record is written as tmp/NAME.tmp.XXXXXX, then linked into wal/main/)
	t_rc 1 "wal-push of $s1 whose record's fsync fails: exit 1" bkf "/tmp/$s1.tmp." "$S/$s1"
	t_true "... naming the fsync" grep -q "fsync .*Input/output error" "$ERR" || diag "$(cat "$ERR")"
	t_rc 3 "... and $s1 is not archived" bkp pg wal-fetch "$s1" "$F/$s1"
	t_rc 1 "wal-push of $s2 again, whose record's fsync fails: exit 1" bkf "/wal/main/$s2" "$S/$s2"
	# a file cut while it is read (io-fault.c halves it at its first read, after the
	# push has checked its size) is never stored short (found by a mutation audit:
	# without the check of the bytes read against the size, every test passed)
	mkdir -p "$S/cut"
	cp "$S/$s1" "$S/cut/$s1.partial"
	chown -R postgres: "$S/cut"
	t_rc 5 "wal-push of $s1.partial, cut to half while read: exit 5" pg_as_server env \
		LD_PRELOAD="$IO_FAULT_LIB" ASAN_OPTIONS=verify_asan_link_order=0 IO_FAULT=cut-read \
		IO_FAULT_PATH="$S/cut/" "$BUNKER" -q --repo "$REPO" --key-file "$KEY" \
		pg wal-push "$S/cut/$s1.partial"
	t_true "... saying it changed while read" grep -q \
		"^bunker: wal-push: $S/cut/$s1.partial: $(($(file_size "$S/$s1") / 2)) bytes read of its $(file_size "$S/$s1"): it changed while read$" \
		"$ERR" || diag "$(cat "$ERR")"
	t_rc 3 "... and $s1.partial is not archived" bkp pg wal-fetch "$s1.partial" "$F/x"
else
	skip "io-fault library not built (IO_FAULT_LIB)"
fi
t_rc 0 "wal-push of $s2 again, same bytes: exit 0" bkp pg wal-push "$S/$s2"
mkdir "$S/other"
cp "$S/$s2" "$S/other/$s2"
chown -R postgres: "$S/other"
t_rc 0 "wal-push of the same bytes from another path: exit 0" bkp pg wal-push "$S/other/$s2"
# in a repository of 4 KiB chunks too: WAL is stored in larger blocks, which the
# comparison must hold (found by review: it overflowed a buffer of the largest chunk)
bk4() { pg_as_server "$BUNKER" -q --repo "$T/bk/small" --key-file "$KEY" "$@"; }
bk4 init --chunk-size 4K >/dev/null
t_rc 0 "wal-push $s2 into a repository of 4 KiB chunks" bk4 pg wal-push "$S/$s2"
t_rc 0 "... and again, same bytes: exit 0" bk4 pg wal-push "$S/$s2"
mkdir -p "$S/4k"
cp "$S/$s2" "$S/4k/$s2"
flip_byte "$S/4k/$s2" $(($(file_size "$S/$s2") - 1))
chown -R postgres: "$S/4k"
t_fails "... with its last byte changed: fails" bk4 pg wal-push "$S/4k/$s2"
t_true "... as different contents" grep -q "already archived for cluster 'main' with different contents" "$ERR" ||
	diag "$(cat "$ERR")"

# a copy taken before the server had finished the segment (zeros after its records,
# as pushed by hand from pg_wal) is stored (a standby's last one before it fails
# over is such a copy); the finished segment then says so, and what to do (it only
# said "different contents", and archiving stayed stuck: found by review)
bks() { pg_as_server "$BUNKER" -q --repo "$T/bk/short" --key-file "$KEY" "$@"; }
bks init >/dev/null
mkdir -p "$S/short"
head -c $((5 * 8192 + 100)) "$S/$s2" >"$S/short/$s2"
truncate -s "$(file_size "$S/$s2")" "$S/short/$s2"
chown -R postgres: "$S/short"
t_rc 0 "wal-push of $s2 cut short (zeros after 40 kB)" bks pg wal-push "$S/short/$s2"
t_rc 1 "... then of the finished $s2: exit 1" bks pg wal-push "$S/$s2"
t_true "... saying the archived copy is cut short, and what to do" grep -q \
	"^bunker: wal-push: $s2 is already archived for cluster 'main' cut short: its WAL stops after the record at 0/[0-9A-F]*, where this file's goes on .* archive under a new --cluster from here on and take a base backup there$" \
	"$ERR" || diag "$(cat "$ERR")"

# a file that differs before where the archived copy stops is only different
cp "$S/$s2" "$S/short/$s2"
flip_byte "$S/short/$s2" 20000
t_rc 1 "... and of a $s2 that differs before the archived copy stops: exit 1" bks pg wal-push "$S/short/$s2"
t_true "... as different contents, not cut short" grep -q "already archived for cluster 'main' with different contents (a second server archiving into it, as a copy of this one started as a primary? an archived file is never replaced; pg info lists the refusals)$" \
	"$ERR" || diag "$(cat "$ERR")"

flip_byte "$S/other/$s2" 100000
t_fails "wal-push of $s2 with one byte changed fails" bkp pg wal-push "$S/other/$s2"
t_one_line_error "with a one-line message"
t_true "the message names the file" grep -q "$s2" "$ERR"
t_rc 0 "wal-fetch $s2 after the refused push" bkp pg wal-fetch "$s2" "$F/$s2"
t_cmp "$F/$s2" "$S/$s2" "the archive kept the first copy"
rm -f "$F/$s2"
# a difference in the last byte, and a difference in length (.partial: any size)
cp "$S/$s2" "$S/other/$s2"
flip_byte "$S/other/$s2" $(($(file_size "$S/$s2") - 1))
t_fails "wal-push of $s2 with its last byte changed fails" bkp pg wal-push "$S/other/$s2"
cp "$S/$s3" "$S/$s3.partial"
chown postgres: "$S/$s3.partial"
t_rc 0 "wal-push of a .partial" bkp pg wal-push "$S/$s3.partial"
head -c 1000000 "$S/$s3" >"$S/other/$s3.partial"
chown postgres: "$S/other/$s3.partial"
t_rc 1 "wal-push of a shorter .partial of the same name: exit 1 (different bytes)" \
	bkp pg wal-push "$S/other/$s3.partial"

t_rc 3 "wal-push of a missing file fails, exit 3 (not found)" \
	bkp pg wal-push "$S/000000010000000000000042"
mkfifo "$S/000000010000000000000043" && chown postgres: "$S/000000010000000000000043"
t_rc 2 "wal-push of a FIFO is refused at once (open did not block)" \
	timeout 10 runuser -u postgres -- "$BUNKER" -q --repo "$REPO" --key-file "$KEY" \
	pg wal-push "$S/000000010000000000000043"
rm -f "$S/000000010000000000000043"
t_one_line_error "with a one-line message"
head -c 8192 "$S/$s1" >"$S/other/$s1"
chown postgres: "$S/other/$s1"
t_fails "wal-push of a segment cut short fails" bkp pg wal-push "$S/other/$s1"
t_rc 3 "and it is not archived" bkp pg wal-fetch "$s1" "$F/$s1"
# a segment or .partial whose first page is another segment's: refused
for n in 0000000100000000000000A0 0000000100000000000000A0.partial; do
	cp "$S/$s1" "$S/other/$n"
	chown postgres: "$S/other/$n"
	t_rc 5 "wal-push of $s1 as $n: exit 5" bkp pg wal-push "$S/other/$n"
	t_true "... naming the file" grep -q "^bunker: wal-push: $S/other/$n: " "$ERR" || diag "$(cat "$ERR")"
	t_rc 3 "... and $n is not archived" bkp pg wal-fetch "$n" "$F/x"
done
cp "$S/$s1" "$S/other/not-a-wal-name"
t_fails "wal-push of a file whose name is not a WAL name fails" bkp pg wal-push "$S/other/not-a-wal-name"

# ---- another system ----
# Cluster B: another initdb, another system identifier; its first segment's name is
# not yet in cluster main (A's first segment was never pushed).
pg_as_server "$PG_BIN/initdb" -D "$SRV/b" -U postgres -A trust --no-sync --no-instructions \
	>"$T/initdb-b.log" 2>&1 || { echo "Bail out! initdb B failed"; exit 1; }
sysid_b=$(pg_as_server "$PG_BIN/pg_controldata" -D "$SRV/b" | sed -n 's/^Database system identifier: *//p')
b1=$(ls "$SRV/b/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -n 1)
t_true "cluster B has another system identifier ($sysid_b)" test "$sysid_b" != "$sysid_a"
t_fails "wal-push of B's $b1 into cluster main (A's) is refused" bkp pg wal-push "$SRV/b/pg_wal/$b1"
t_one_line_error "with a one-line message"
t_true "the message names the other system" grep -q "$sysid_b" "$ERR" || diag "$(cat "$ERR")"
t_rc 3 "cluster main has no $b1 after the refusal" bkp pg wal-fetch "$b1" "$F/$b1"
t_rc 0 "wal-push of B's $b1 with --cluster other is accepted" \
	bkp --cluster other pg wal-push "$SRV/b/pg_wal/$b1"
t_rc 0 "wal-fetch --cluster other $b1" bkp --cluster other pg wal-fetch "$b1" "$F/$b1"
t_cmp "$F/$b1" "$SRV/b/pg_wal/$b1" "B's segment comes back from cluster other"
rm -f "$F/$b1"
t_fails "A's $s1 into cluster other (B's) is refused" bkp --cluster other pg wal-push "$S/$s1"
# the same refusal for a dump (or a base backup) of server A: it names no WAL ("this
# WAL is from system", it said, of a dump)
pg_as_server "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null 2>&1
t_rc 1 "pg dump of server A as cluster other (B's) is refused" \
	bkp --cluster other pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" \
	"bunker: dump: cluster 'other' belongs to system $sysid_b, and this server is system $sysid_a (use another --cluster name for another server)" \
	"in one line naming both systems"
pg_stop
t_rc 0 "A's $s1 into cluster main is accepted" bkp pg wal-push "$S/$s1"

# ---- fetch contracts ----
ls -A "$F" >"$T/f.before"
t_rc 3 "wal-fetch of a segment the archive lacks exits 3" \
	bkp pg wal-fetch 000000010000000000000077 "$F/RECOVERYXLOG"
t_is "$(cat "$ERR")" "" "quietly"
t_rc 3 "wal-fetch of a missing 00000002.history exits 3" \
	bkp pg wal-fetch 00000002.history "$F/RECOVERYHISTORY"
t_is "$(cat "$ERR")" "" "quietly"
# Any other failure exits 128: PostgreSQL takes 1-125 for "not in the archive" and
# ends recovery there, above 125 it aborts recovery.
t_rc 128 "wal-fetch for a cluster with no WAL in the repository exits 128" \
	bkp --cluster nobody pg wal-fetch "$s1" "$F/RECOVERYXLOG"
t_true "naming the cluster" grep -q "^bunker: wal-fetch $s1: cluster 'nobody' has no WAL in this repository" "$ERR" ||
	diag "$(cat "$ERR")"
# a cluster whose WAL is not archived yet (its wal/<cluster> missing or empty), and
# no base backup of it here: a standby set up before the first push probes for
# files that are not there yet (exit 3; 128 would stop it: found by review);
# pg-archive.sh has the case with a base backup, where 128 is right
mv "$REPO/wal/main" "$REPO/wal/main.aside"
for f in "$s2" 00000002.history; do
	t_rc 3 "wal-fetch of $f with wal/main missing, no base backup: exit 3" \
		bkp pg wal-fetch "$f" "$F/RECOVERYXLOG"
done
mv "$REPO/wal/main.aside" "$REPO/wal/main"
# ---- read-ahead (pg restore's restore_command: wal-fetch --read-ahead) ----
# Run as recovery runs it, in a data directory in recovery (here one with the
# files the read-ahead looks at: PG_VERSION, postmaster.pid, recovery.signal;
# pg-pitr.sh has a real one) onto pg_wal/RECOVERYXLOG: the segments after the one
# fetched are read into a spool beside DEST by a process of its own; the next fetch
# takes its segment from there by a rename (the same inode), byte-exact; a segment
# not archived is the archive's answer still (exit 3); a DEST that is not a file is
# refused as ever; once the server is gone (no postmaster.pid), the read-ahead
# removes its spool; it refuses to work in a directory not named as a spool.
D=$T/fakedata
mkdir -p "$D/pg_wal"
touch "$D/PG_VERSION" "$D/postmaster.pid" "$D/recovery.signal"
chown -R postgres: "$D"
dfetch() { (cd "$D" && bkp pg wal-fetch --read-ahead "$@"); }
t_rc 0 "wal-fetch --read-ahead $s2 in a data directory in recovery" dfetch "$s2" pg_wal/RECOVERYXLOG
t_cmp "$S/$s2" "$D/pg_wal/RECOVERYXLOG" "... byte-exact"
spool=
for _ in $(seq 100); do
	spool=$(ls -d "$D"/pg_wal/bunker-read-ahead.*.main 2>/dev/null)
	[ -n "$spool" ] && [ -f "$spool/$s3" ] && break
	sleep 0.1
done
t_true "... and $s3 is read ahead into a spool beside DEST (${spool##*/})" test -f "$spool/$s3"
t_cmp "$S/$s3" "$spool/$s3" "... byte-exact"
ino=$(stat -c %i "$spool/$s3")
t_rc 0 "wal-fetch --read-ahead $s3" dfetch "$s3" pg_wal/RECOVERYXLOG
t_cmp "$S/$s3" "$D/pg_wal/RECOVERYXLOG" "... byte-exact"
t_is "$(stat -c %i "$D/pg_wal/RECOVERYXLOG")" "$ino" "... the spool's file itself (renamed)"
t_rc 3 "wal-fetch --read-ahead of a segment not archived: exit 3" \
	dfetch 000000010000000000000077 pg_wal/RECOVERYXLOG
t_is "$(cat "$ERR")" "" "... quietly"
rm -f "$D/pg_wal/RECOVERYXLOG"
pg_as_server mkfifo "$D/pg_wal/RECOVERYXLOG"
t_rc 128 "wal-fetch --read-ahead onto a FIFO exits 128" dfetch "$s3" pg_wal/RECOVERYXLOG
t_true "... and leaves it" test -p "$D/pg_wal/RECOVERYXLOG"
rm -f "$D/pg_wal/RECOVERYXLOG"
mkdir -p "$T/other"
cp "$S/$s2" "$T/other/keep"
chown -R postgres: "$T/other"
t_rc 2 "wal-read-ahead in a directory not named as a spool: exit 2" \
	bkp pg wal-read-ahead "$T/other"
t_true "... which it leaves as it was" cmp -s "$S/$s2" "$T/other/keep"
rm -f "$D/postmaster.pid"
for _ in $(seq 50); do [ -e "$spool" ] || break; sleep 0.1; done
t_true "the server gone, the read-ahead removes its spool" test ! -e "$spool"
t_rc 0 "wal-fetch --read-ahead to another DEST than RECOVERYXLOG" dfetch "$s2" pg_wal/"$s2"
t_true "... reads nothing ahead" test -z "$(ls -d "$D"/pg_wal/bunker-read-ahead.* 2>/dev/null)"
# a spool that a SIGKILL left (no filler holds its lock) goes at the next wal-push
# from that pg_wal; one a filler holds stays (found by review: it stayed for ever)
pg_as_server mkdir "$spool"
pg_as_server cp "$S/$s3" "$spool/$s3"
pg_as_server touch "$spool/want" "$spool/.lock"
pg_as_server flock "$spool/.lock" sleep 3 &
held=$!
sleep 0.3
t_rc 0 "wal-push $s2 from that pg_wal, its spool's lock held" bkp pg wal-push "$D/pg_wal/$s2"
t_true "... leaves the spool" test -f "$spool/$s3"
wait "$held"
t_rc 0 "wal-push $s2 again, the lock let go" bkp pg wal-push "$D/pg_wal/$s2"
t_true "... removes the spool" test ! -e "$spool"
rm -rf "$D" "$T/other"
t_rc 128 "wal-fetch from a repository that does not exist exits 128" \
	pg_as_server "$BUNKER" -q --repo "$T/bk/none" --key-file "$KEY" pg wal-fetch "$s1" "$F/RECOVERYXLOG"
pg_as_server "$BUNKER" -q --repo "$T/bk/other" --new-key-file "$T/bk/other.key" init >/dev/null
t_rc 128 "wal-fetch with a wrong key exits 128" \
	pg_as_server "$BUNKER" -q --repo "$REPO" --key-file "$T/bk/other.key" pg wal-fetch "$s1" "$F/RECOVERYXLOG"
t_rc 128 "wal-fetch without DEST exits 128" bkp pg wal-fetch "$s1"
# so do the options' usage errors, found before the command runs (they exited 2,
# which PostgreSQL reads as "not in the archive": found by review)
t_rc 128 "wal-fetch with an unknown option exits 128" bkp --bogus pg wal-fetch "$s1" "$F/RECOVERYXLOG"
t_rc 128 "... also after 'pg' (getopt takes options anywhere)" \
	bkp pg --bogus wal-fetch "$s1" "$F/RECOVERYXLOG"
t_rc 128 "wal-fetch with two secrets exits 128" \
	bkp --password-file "$KEY" pg wal-fetch "$s1" "$F/RECOVERYXLOG"
t_true "... naming them" grep -q "give only one of --key-file" "$ERR"
bkl() { pg_as_server "$BUNKER" -q --repo "$T/bk/lost" --key-file "$KEY" "$@"; }
bkl init >/dev/null && cp -a "$T/bk/lost" "$T/bk/noindex" && bkl pg wal-push "$S/$s1" &&
	cp -a "$T/bk/lost/wal" "$T/bk/noindex/" && rm -f "$T"/bk/lost/data/*/*
t_rc 128 "wal-fetch of a segment whose packs are gone exits 128" bkl pg wal-fetch "$s1" "$F/RECOVERYXLOG"
t_true "naming the missing pack" grep -q "^bunker: wal-fetch $s1: pack data/.* is missing" "$ERR" || diag "$(cat "$ERR")"
# the record of a copy of the repository whose index (and packs) predate it: its
# blobs are not in the index, and that too is not "not archived"
t_rc 128 "wal-fetch of a segment whose blobs are not in the index exits 128" \
	pg_as_server "$BUNKER" -q --repo "$T/bk/noindex" --key-file "$KEY" pg wal-fetch "$s1" "$F/RECOVERYXLOG"
t_true "... naming the blob" grep -q "^bunker: wal-fetch $s1: .*blob [0-9a-f]* is not in the index" "$ERR" ||
	diag "$(cat "$ERR")"
# a segment not archived where the cluster's record does not read: not "not
# archived" either (the archive cannot say)
flip_byte "$T/bk/lost/clusters/main" 40
t_rc 128 "wal-fetch of a missing segment, the cluster's record damaged, exits 128" \
	bkl pg wal-fetch 000000010000000000000077 "$F/RECOVERYXLOG"
t_true "... naming the record" grep -q "^bunker: wal-fetch 000000010000000000000077: .*clusters/main" "$ERR" ||
	diag "$(cat "$ERR")"
t_is "$(ls -A "$F")" "$(cat "$T/f.before")" "nothing is left in the destination directory"
# nor does pg info, which monitoring reads, exit 0 when it cannot read the archive
t_rc 5 "pg info with the cluster's record damaged exits 5" bkl pg info
t_true "... naming the record" grep -q "^bunker: pg info: .*clusters/main" "$ERR" || diag "$(cat "$ERR")"

for s in "$s1" "$s2" "$s3"; do
	t_rc 0 "wal-fetch $s" bkp pg wal-fetch "$s" "$F/$s" && t_cmp "$F/$s" "$S/$s" "$s is byte-exact"
done
t_rc 0 "wal-fetch of the .partial" bkp pg wal-fetch "$s3.partial" "$F/p" &&
	t_cmp "$F/p" "$S/$s3.partial" "the .partial is byte-exact"
# PostgreSQL fetches into pg_wal/RECOVERYXLOG, which may exist from an earlier fetch.
pg_as_server sh -c "head -c 5000 /dev/urandom >'$F/RECOVERYXLOG'"
t_rc 0 "wal-fetch over an existing DEST" bkp pg wal-fetch "$s2" "$F/RECOVERYXLOG"
t_cmp "$F/RECOVERYXLOG" "$S/$s2" "DEST now holds exactly the segment"
# not 3: the segment is archived, and 3 would end recovery as if it were not
t_rc 128 "wal-fetch into a missing directory exits 128" bkp pg wal-fetch "$s2" "$F/no/such/dir/x"
t_true "naming the directory" grep -q "^bunker: wal-fetch $s2: create $F/no/such/dir/x.*: no such directory" "$ERR" ||
	diag "$(cat "$ERR")"
t_true "and creates nothing" test ! -e "$F/no"
# a DEST that is not a file is not replaced (as root, /dev/null was: found by review)
pg_as_server mkfifo "$F/fifo"
t_rc 128 "wal-fetch onto a FIFO exits 128" bkp pg wal-fetch "$s2" "$F/fifo"
t_is "$(cat "$ERR")" "bunker: wal-fetch $s2: $F/fifo exists and is not a regular file" "... in one line naming it"
t_true "and leaves it a FIFO" test -p "$F/fifo"
rm -f "$F/fifo"
# an empty DEST is refused before the fetch (it wrote a temporary file into the
# working directory, then failed to rename it to "", and said so): nothing is left
# in $F, below
t_rc 128 "wal-fetch of an archived segment to an empty DEST exits 128" \
	pg_as_server sh -c 'cd "$1" && shift && exec "$@"' - "$F" \
	"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg wal-fetch "$s2" ""
t_is "$(cat "$ERR")" "bunker: pg wal-fetch: DEST is empty (see 'bunker --help')" \
	"in one line, before fetching"
leftover=$(ls -A "$F" | grep -v -x -e "$s1" -e "$s2" -e "$s3" -e p -e RECOVERYXLOG)
t_is "$leftover" "" "no temporary files are left beside DEST"
rm -f "$F"/*

# history files: what is not one is refused (exit 5), naming what is wrong, and not
# stored (found by review: any bytes were, and then every restore of the cluster
# failed on them)
mkdir -p "$S/bad"
printf 'garbage\n' >"$S/bad/00000002.history"
printf '\n' >"$S/bad/00000003.history"
printf '5\t0/5000000\tx\n' >"$S/bad/00000004.history"
head -c $((2 << 20)) /dev/zero >"$S/bad/00000005.history"
printf '1\t0/5000130\tbefore 2000-01-01 00:00:00\n7\t0/6000000\tx\n' >"$S/bad/00000006.history"
chown -R postgres: "$S/bad"
t_rc 5 "wal-push of a history file that is not one: exit 5" bkp pg wal-push "$S/bad/00000002.history"
t_is "$(cat "$ERR")" "bunker: wal-push: $S/bad/00000002.history: history file line 1: expected a timeline id" \
	"... in one line naming the line"
t_rc 5 "... one without a line: exit 5" bkp pg wal-push "$S/bad/00000003.history"
t_true "... saying so" grep -q "not a history file: no line names a parent timeline" "$ERR"
t_rc 5 "... one naming a timeline not below its own: exit 5" bkp pg wal-push "$S/bad/00000004.history"
t_true "... saying so" grep -q "timeline 5 not below the file's 4" "$ERR"
t_rc 5 "... one of 2 MiB: exit 5" bkp pg wal-push "$S/bad/00000005.history"
t_true "... saying so" grep -q "2097152 bytes is too large for a history file" "$ERR"
t_rc 5 "... one whose second line is wrong: exit 5" bkp pg wal-push "$S/bad/00000006.history"
t_true "... saying so" grep -q "timeline 7 not below the file's 6" "$ERR" || diag "$(cat "$ERR")"
for h in 2 3 4 5 6; do
	t_rc 3 "... and 0000000$h.history is not archived" bkp pg wal-fetch "0000000$h.history" "$F/h"
done
# a .partial has the segment's size, as PostgreSQL and pg_receivewal write it
head -c 100 "$S/$s1" >"$S/bad/$s1.partial"
chown postgres: "$S/bad/$s1.partial"
t_rc 5 "wal-push of a 100-byte .partial: exit 5" bkp pg wal-push "$S/bad/$s1.partial"
t_true "... naming the segment size" grep -q "100 bytes, the segment size is 16777216" "$ERR"

# history files: byte-exact
printf '1\t0/5000130\tbefore 2000-01-01 00:00:00\n' >"$S/00000002.history"
chown postgres: "$S/00000002.history"
t_rc 0 "wal-push 00000002.history" bkp pg wal-push "$S/00000002.history"
t_rc 0 "wal-fetch 00000002.history" bkp pg wal-fetch 00000002.history "$F/h" &&
	t_cmp "$F/h" "$S/00000002.history" "the history file is byte-exact"
printf '1\t0/6000000\tother\n' >"$S/other/00000002.history"
chown postgres: "$S/other/00000002.history"
t_fails "wal-push of another 00000002.history fails" bkp pg wal-push "$S/other/00000002.history"
# a backup history file (.backup) is compared whole: the same start with a line more
# is another file; over 1 MiB it is refused, as a history file is
bh=$s2.00000028.backup
printf 'START WAL LOCATION: 0/2000028 (file %s)\nLABEL: one\n' "$s2" >"$S/$bh"
{ cat "$S/$bh"; printf 'STOP WAL LOCATION: 0/2000100 (file %s)\n' "$s2"; } >"$S/other/$bh"
head -c $((2 << 20)) /dev/zero >"$S/bad/$s3.00000028.backup"
chown postgres: "$S/$bh" "$S/other/$bh" "$S/bad/$s3.00000028.backup"
t_rc 0 "wal-push of $bh" bkp pg wal-push "$S/$bh"
t_rc 1 "... then of one with a line added at its end: exit 1" bkp pg wal-push "$S/other/$bh"
t_true "... as different contents" grep -q "already archived for cluster 'main' with different contents" "$ERR"
t_rc 0 "wal-fetch $bh" bkp pg wal-fetch "$bh" "$F/b" && t_cmp "$F/b" "$S/$bh" "... is the first copy"
t_rc 5 "wal-push of a .backup of 2 MiB: exit 5" bkp pg wal-push "$S/bad/$s3.00000028.backup"
t_true "... saying so" grep -q "2097152 bytes is too large for a history file" "$ERR"

# ---- kill -9 during a push ----
# Cluster C has 64 MiB segments. Its first segment's page header is kept and the rest
# filled with random bytes, so a push takes long enough to be killed at several
# moments; each attempt uses the next segment (header patched to its address).
pg_as_server "$PG_BIN/initdb" -D "$SRV/c" -U postgres -A trust --no-sync --no-instructions \
	--wal-segsize=64 >"$T/initdb-c.log" 2>&1 || { echo "Bail out! initdb C failed"; exit 1; }
c1=$(ls "$SRV/c/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -n 1)
seg_mb=64
# make_big K FILE: segment K of timeline 1 (64 MiB segments), random after the header
make_big() {
	local k=$1 out=$2 addr i
	{
		head -c 40 "$SRV/c/pg_wal/$c1"
		gen_bytes $((1000 + k)) $((seg_mb * 1048576 - 40))
	} >"$out"
	addr=$((k * seg_mb * 1048576))
	for i in 0 1 2 3 4 5 6 7; do
		printf "\\x$(printf %02x $(((addr >> (8 * i)) & 255)))"
	done | dd of="$out" bs=1 seek=8 count=8 conv=notrunc status=none
	chown postgres: "$out"
}
big_name() { printf '00000001%08X%08X' 0 "$1"; }
# As the server's user, bunker itself: setpriv execs it, so that a kill in the
# background loops below reaches bunker (a shell function run with & is a subshell:
# killing it would leave bunker running to the end).
as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups "$BUNKER" -q --repo "$REPO" --key-file "$KEY")
pushc() { "${as_pg[@]}" --cluster big pg wal-push "$1"; }

make_big 1 "$S/$(big_name 1)"
t0=$(date +%s%N)
t_rc 0 "an uninterrupted push of a 64 MiB segment" pushc "$S/$(big_name 1)"
dur_ms=$((($(date +%s%N) - t0) / 1000000))
diag "a 64 MiB push takes $dur_ms ms"
rm -f "$S/$(big_name 1)"

bad_absent= bad_retry= bad_fetch= killed=0 pid=
at_exit '[ -n "$pid" ] && kill -9 "$pid"'
# Kill at spread-out moments; a push that finished before its kill makes the
# estimate shorter, so that timing noise cannot leave the test without kills.
k=2
attempts=0
pcts=(2 10 25 40 55 70 85 95 110)
while [ $attempts -lt 24 ] && { [ $attempts -lt 9 ] || [ $killed -lt 5 ]; }; do
	pct=${pcts[$((attempts % 9))]}
	attempts=$((attempts + 1))
	name=$(big_name $k)
	make_big $k "$S/$name"
	delay_ms=$((dur_ms * pct / 100))
	"${as_pg[@]}" --cluster big pg wal-push "$S/$name" >/dev/null 2>&1 &
	pid=$!
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if [ $? = 137 ]; then
		killed=$((killed + 1))
	elif [ "$pct" -lt 100 ]; then
		dur_ms=$((dur_ms * 3 / 4 + 1))
	fi
	# after the kill the name is absent or complete, never partial
	bkp --cluster big pg wal-fetch "$name" "$F/$name" >/dev/null 2>&1
	rc=$?
	if [ "$rc" = 0 ]; then
		cmp -s "$F/$name" "$S/$name" || bad_absent+="$name@$pct%(partial) "
	elif [ "$rc" != 3 ]; then
		bad_absent+="$name@$pct%(exit $rc) "
	fi
	[ "$rc" != 0 ] && [ -e "$F/$name" ] && bad_absent+="$name@$pct%(left a file) "
	rm -f "$F/$name"
	pushc "$S/$name" >/dev/null 2>"$T/retry.err" || bad_retry+="$name@$pct%($(head -c 200 "$T/retry.err")) "
	if ! bkp --cluster big pg wal-fetch "$name" "$F/$name" || ! cmp -s "$F/$name" "$S/$name"; then
		bad_fetch+="$name@$pct% "
	fi
	rm -f "$F/$name" "$S/$name"
	k=$((k + 1))
done
diag "$killed of $attempts pushes were killed before they ended"
t_true "at least 5 pushes were killed mid-way" test "$killed" -ge 5
t_is "$bad_absent" "" "after each kill the segment is absent or complete"
t_is "$bad_retry" "" "each retry exits 0"
t_is "$bad_fetch" "" "each segment then fetches byte-exact"

# Two pushes of one name with different bytes at once (both find no record, both
# store): the record is created once, and the push that loses compares and fails:
# it never exits 0 for bytes the archive does not hold.
name=$(big_name $k)
make_big $k "$S/$name"
mkdir -p "$S/race"
cp "$S/$name" "$S/race/$name"
flip_byte "$S/race/$name" $((seg_mb * 1048576 - 1))
chown -R postgres: "$S/race"
"${as_pg[@]}" --cluster big pg wal-push "$S/$name" 2>/dev/null &
p1=$!
"${as_pg[@]}" --cluster big pg wal-push "$S/race/$name" 2>/dev/null &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
t_is "$(printf '%s\n' $r1 $r2 | sort | tr '\n' ' ')" "0 1 " \
	"two different $name pushed at once: one exits 0, the other 1 ($r1, $r2)"
won=$S/$name
[ "$r2" = 0 ] && won=$S/race/$name
t_rc 0 "wal-fetch $name" bkp --cluster big pg wal-fetch "$name" "$F/$name" &&
	t_cmp "$F/$name" "$won" "... holds the bytes of the push that exited 0"
rm -f "$F/$name" "$S/$name" "$S/race/$name"

# ---- SIGTERM and SIGKILL during a fetch ----
# PostgreSQL stops restore_command with SIGTERM when it shuts down during recovery:
# the fetch may end, but must leave no temporary file beside DEST (nothing removes
# it from pg_wal) and never a partial DEST.
name=$(big_name $((k - 1)))
make_big $((k - 1)) "$S/$name"
t0=$(date +%s%N)
"${as_pg[@]}" --cluster big pg wal-fetch "$name" "$F/RECOVERYXLOG"
fetch_ms=$((($(date +%s%N) - t0) / 1000000))
# fetch_under SIG STATUS PCT...: a fetch of $name onto $F/RECOVERYXLOG sent SIG at
# each PCT of a fetch's time; sets hit (how many ended with STATUS) and bad (each
# PCT that left a partial DEST or a temporary file)
fetch_under() {
	local sig=$1 status=$2 pct delay_ms rc
	shift 2
	hit=0 bad=
	for pct in "$@"; do
		rm -f "$F/RECOVERYXLOG"
		"${as_pg[@]}" --cluster big pg wal-fetch "$name" "$F/RECOVERYXLOG" 2>/dev/null &
		pid=$!
		delay_ms=$((fetch_ms * pct / 100))
		sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
		kill -"$sig" "$pid" 2>/dev/null
		wait "$pid"
		rc=$?
		[ "$rc" = "$status" ] && hit=$((hit + 1))
		if [ -e "$F/RECOVERYXLOG" ] && ! cmp -s "$F/RECOVERYXLOG" "$S/$name"; then
			bad+="$pct%(partial DEST) "
		fi
		if ls -A "$F" | grep -q bunker-tmp; then
			bad+="$pct%(temporary file) "
			rm -f "$F"/*bunker-tmp*
		fi
	done
	pid=
}
fetch_under TERM 143 3 10 20 35 50 65 80 95 3 10 20 35 50 65 80 95
diag "$hit of 16 fetches ($fetch_ms ms each) ended by SIGTERM"
t_is "$bad" "" "SIGTERM during wal-fetch leaves no temporary file and never a partial DEST"
t_true "at least 4 fetches got the signal" test "$hit" -ge 4
# SIGKILL (the OOM killer) while it writes: no temporary file either, and no
# partial DEST (found by a helper's exploration: the named temporary file stayed in
# pg_wal for ever)
fetch_under KILL 137 10 25 40 55 70 85 10 25 40 55 70 85
diag "$hit of 12 fetches killed"
t_is "$bad" "" "SIGKILL during wal-fetch leaves no temporary file and no partial DEST"
t_true "at least 4 fetches were killed" test "$hit" -ge 4
# (a file system without unnamed files: a named temporary file from the start)
if [ -n "${IO_FAULT_LIB:-}" ]; then
	rm -f "$F/RECOVERYXLOG"
	t_rc 0 "wal-fetch where the file system has no O_TMPFILE" pg_as_server env \
		LD_PRELOAD="$IO_FAULT_LIB" ASAN_OPTIONS=verify_asan_link_order=0 IO_FAULT=no-tmpfile \
		IO_FAULT_PATH="$F" "$BUNKER" -q --repo "$REPO" --key-file "$KEY" --cluster big \
		pg wal-fetch "$name" "$F/RECOVERYXLOG"
	t_cmp "$S/$name" "$F/RECOVERYXLOG" "... byte-exact"
fi
rm -f "$F/RECOVERYXLOG" "$S/$name"

t_rc 0 "bunker check is clean after the kills" bkp check
t_rc 0 "bunker check --read-data is clean" bkp check --read-data

done_testing
