#!/bin/bash
# pg-basebackup.sh: `bunker pg basebackup` of a real PostgreSQL 15 server while pgbench
# writes to it, with the WAL archived by `bunker pg wal-push`. The backup is restored
# with `bunker pg restore SNAPSHOT` (no target: to the end of the archive) and started:
# it reaches consistency, amcheck finds nothing wrong (bt_index_check with
# heapallindexed on every btree index, verify_heapam on every table), pgbench's
# invariant holds (sum of account, teller and branch balances = sum of history deltas)
# and its tables equal the original server's final state. Its snapshot records the
# start its backup_label gives (START WAL LOCATION, START TIMELINE) and a stop after
# it. Then dedup: with the data unchanged but for a few rows, another base backup
# stores little (its stored_bytes against its logical_bytes and against the first
# backup's), and it takes the files
# unchanged since the one before from it (reused_files in its metadata) while the
# files the changes wrote are read again: that last backup, restored on its own,
# holds the changed rows (they were written before it started, so no WAL it
# replays brings them back). A backup after a pack was lost (and the index
# repaired) stores again what the pack held instead of referencing it.
# BUNKER_TEST_QUICK=1 shortens the load.
. "$SRCDIR/tests/integration/lib-pitr.sh"
pitr_init pg-basebackup

scale=5 secs=20 blob_mb=20
[ "$QUICK" = 1 ] && scale=2 secs=8

PG_INITDB_OPTS=--data-checksums pg_start "$T/pg" || { echo "Bail out! PostgreSQL did not start"; exit 1; }
pitr_archiving_on || { echo "Bail out! restart with archiving failed"; exit 1; }
# Settings an earlier recovery of this server may have left in its postgresql.conf
# (a primary ignores them), carried by its base backups: a recovery target spelled in
# capitals, which PostgreSQL does not take for the same setting as the lower-case
# lines bunker writes (with two targets the restored server would not start), and
# commands for the original's own archive (a standby's pg_archivecleanup of a shared
# one), which must not run in a restored copy (found by review)
pg_conf_set RECOVERY_TARGET_NAME never
pg_conf_set archive_cleanup_command "touch $SRV/cleanup-ran"
pg_conf_set recovery_end_command "touch $SRV/end-ran"

# A file dated before 1970 (PostgreSQL's tar writes its mtime in base-256 with a
# marker bunker refused: every backup failed, "bad numeric field", exit 5)
pg_as_server touch -d '1969-07-20 00:00:00 UTC' "$PG_DATA/moon.txt"
t_true "pgbench -i -s $scale" "$PG_BIN/pgbench" -i -s "$scale" -q postgres
# Incompressible data (TOAST without compression), so stored bytes mean something.
pg_psql >/dev/null <<EOF
create table blobs (id int primary key, b bytea);
alter table blobs alter column b set storage external;
insert into blobs
  select g, (select decode(string_agg(md5(i::text || ':' || g || ':' || random()), ''), 'hex')
             from generate_series(1, 65536) i)
  from generate_series(1, $blob_mb) g;
EOF
t_is "$(pg_sql "select sum(length(b)) from blobs")" $((blob_mb * 1048576)) "$blob_mb MiB of random bytes in table blobs"

"$PG_BIN/pgbench" -T "$secs" -c 4 -j 2 -n postgres >"$T/pgbench.log" 2>&1 &
bench=$!
at_exit "kill $bench"
sleep 3
b1=$(bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint 2>"$T/b1.err")
t_is "$?" 0 "pg basebackup while pgbench runs" || diag "$(cat "$T/b1.err")"
if kill -0 "$bench" 2>/dev/null; then
	ok "the backup ended while pgbench was still writing"
else
	not_ok "the backup ended while pgbench was still writing" "pgbench ended first: lengthen the load"
fi
wait "$bench"
t_is "$?" 0 "pgbench -T $secs -c 4" || diag "$(tail -n 5 "$T/pgbench.log")"
diag "$(grep -E '^tps' "$T/pgbench.log")"
id1=$(json_field "$b1" snapshot)
stored1=$(json_field "$b1" stored_bytes)
logical1=$(json_field "$b1" logical_bytes)
t_is "${#id1}" 64 "basebackup --json prints the snapshot id"
diag "backup under load: logical $logical1, stored $stored1"
meta=$(bkp snapshots --json --name pg/main/base)
t_true "the snapshot records start and stop LSNs and the timeline" \
	grep -q '"timeline":"1","start_lsn":"[0-9A-F]*/[0-9A-F]*","stop_lsn":"[0-9A-F]*/[0-9A-F]*"' <<<"$meta"
# ... the backup's own: its backup_label's start, and a stop after it (pgbench wrote
# in between)
m1=$(snap_line "$id1" <<<"$meta")
start1=$(json_field "$m1" start_lsn)
stop1=$(json_field "$m1" stop_lsn)
t_is "$start1" "$(sed -n 's/.*START WAL LOCATION: \([0-9A-F]*\/[0-9A-F]*\) .*/\1/p' <<<"$m1")" \
	"its start_lsn is its backup_label's START WAL LOCATION"
t_is "$(json_field "$m1" timeline)" "$(sed -n 's/.*START TIMELINE: \([0-9]*\).*/\1/p' <<<"$m1")" \
	"its timeline is its backup_label's START TIMELINE"
t_is "$(pg_sql "select '$stop1'::pg_lsn > '$start1'::pg_lsn")" t \
	"its stop_lsn $stop1 is after its start_lsn $start1"

# Quiet the server (no autovacuum churn), settle hint bits, then a baseline backup,
# a few changed rows, and one more backup.
pg_sql "alter system set autovacuum = off" >/dev/null
pg_reload
pg_sql "vacuum (freeze, analyze)" >/dev/null
pg_sql checkpoint >/dev/null
sleep 1 # files written in the second a backup starts are read again by the next one
find "$REPO/data" -type f | sort > "$T/packs-before-b2"
b2=$(bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint 2>"$T/b2.err")
t_is "$?" 0 "a baseline base backup after the load" || diag "$(cat "$T/b2.err")"
find "$REPO/data" -type f | sort | comm -13 "$T/packs-before-b2" - > "$T/packs-of-b2"
pg_psql >/dev/null <<EOF
update pgbench_accounts set abalance = abalance + 7 where aid in (11, 22, 33, 44, 55, 66, 77, 88);
update pgbench_tellers set tbalance = tbalance + 56 where tid = 3;
update pgbench_branches set bbalance = bbalance + 56 where bid = 1;
insert into pgbench_history (tid, bid, aid, delta, mtime) values (3, 1, 11, 56, now());
EOF
sleep 1 # a backup in the second the one before started takes no file from it
b3=$(bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint 2>"$T/b3.err")
t_is "$?" 0 "a base backup after changing a few rows" || diag "$(cat "$T/b3.err")"
stored3=$(json_field "$b3" stored_bytes)
logical3=$(json_field "$b3" logical_bytes)
diag "after a few changes: logical $logical3, stored $stored3"
t_true "the first backup stored the random table (stored $stored1 >= 80% of $blob_mb MiB)" \
	test "$stored1" -ge $((blob_mb * 1048576 * 8 / 10))
t_true "the last backup stores under 30% of its logical bytes ($stored3 of $logical3)" \
	test $((stored3 * 100)) -lt $((logical3 * 30))
t_true "the last backup stores under 30% of what the first stored ($stored3 vs $stored1)" \
	test $((stored3 * 100)) -lt $((stored1 * 30))
id3=$(json_field "$b3" snapshot)
meta3=$(bkp snapshots --json --name pg/main/base | snap_line "$id3")
reused3=$(json_field "$meta3" reused_files)
reused_bytes3=$(json_field "$meta3" reused_bytes)
diag "the last backup reused $reused3 files ($reused_bytes3 bytes) of the one before"
t_true "the last backup reuses the unchanged files of the one before ($reused3 files)" \
	test "${reused3:-0}" -ge 100
t_true "... the untouched random table among them ($reused_bytes3 bytes >= $blob_mb MiB)" \
	test "${reused_bytes3:-0}" -ge $((blob_mb * 1048576))
b4=$(bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint --no-reuse 2>"$T/b4.err")
t_is "$?" 0 "a base backup with --no-reuse" || diag "$(cat "$T/b4.err")"
meta4=$(bkp snapshots --json --name pg/main/base | snap_line "$(json_field "$b4" snapshot)")
t_is "$(json_field "$meta4" reused_files)" 0 "--no-reuse reads every file"
# A lost pack (in a copy of the repository): after repair index, the next backup
# must not copy forward a parent file whose chunks were in that pack, but read and
# store them again, so that it restores whole. The pack: the largest the baseline
# backup wrote (chunks of the random table, unchanged since; its content lists are
# in another pack, so only a check of every chunk notices).
cp -a "$REPO" "$T/bk/lost"
lost_pack=$(xargs -r ls -S < "$T/packs-of-b2" | head -n 1)
t_true "the baseline backup wrote a pack to lose" test -n "$lost_pack"
diag "losing $(basename "$lost_pack") ($(stat -c %s "$lost_pack") bytes)"
rm -f "$T/bk/lost/${lost_pack#"$REPO"/}"
bkl() { pg_as_server "$BUNKER" -q --repo "$T/bk/lost" --key-file "$KEY" "$@"; }
t_rc 0 "repair index after losing the largest pack" bkl repair index
# the loss matters: the latest backup before it no longer restores
if bkl restore "$(json_field "$b4" snapshot)" --target "$SRV/r4" >/dev/null 2>"$T/r4.err"; then
	not_ok "the lost pack held chunks of the base backups (the one before still restored)"
else
	# (for that reason, not any failure: found by review)
	t_true "the lost pack held chunks of the base backups (the one before no longer restores: a chunk is not in the index)" \
		grep -q "is not in the index" "$T/r4.err" || diag "$(cat "$T/r4.err")"
fi
rm -rf "$SRV/r4"
# (its WAL goes to the other repository: no waiting for it here)
b5=$(bkl --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint --archive-timeout 0 \
	2>"$T/b5.err")
t_is "$?" 0 "a base backup into the repository that lost a pack" || diag "$(cat "$T/b5.err")"
id5=$(json_field "$b5" snapshot)
meta5=$(bkl snapshots --json --name pg/main/base 2>/dev/null | snap_line "$id5")
diag "after the loss: reused $(json_field "$meta5" reused_files) files, stored $(json_field "$b5" stored_bytes) bytes"
t_rc 0 "... and it restores whole (no reused file points into the lost pack)" \
	bkl restore "$id5" --target "$SRV/r5"
rm -rf "$SRV/r5" "$T/bk/lost"
meta2=$(bkp snapshots --json --name pg/main/base | snap_line "$(json_field "$b2" snapshot)")
diag "the baseline reused $(json_field "$meta2" reused_files) files of the backup under load"

# ---- the backup's own WAL ----
# The cluster archives into the repository, so basebackup waits there for the WAL its
# backup needs (the server is not asked to wait: it looks once a second). With an
# archive_command that takes 2 s, the stop segment must already be in the repository
# when basebackup exits 0. Into a fresh repository (no WAL of the cluster) the server
# waits instead: it exits 0, and the stop segment is in the main repository by then.
# With a failing archive_command, basebackup exits 1 after --archive-timeout with one
# line naming the first segment missing, and keeps the snapshot, which that segment
# completes once archiving works again. A backup nobody waited for here warns when the
# repository lacks WAL it needs. A backup under a second cluster name of the
# system warns of it (and names where its WAL is: under the first).
pg_conf_set archive_command "sleep 2 && $(pitr_archive_command)"
pg_reload
b6=$(bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint 2>"$T/b6.err")
t_is "$?" 0 "a base backup with a slow archive_command" || diag "$(cat "$T/b6.err")"
seg6=$(pitr_segment_of "$(json_field "$b6" snapshot)" stop_lsn)
t_rc 0 "its stop segment ($seg6) is in the repository when it exits" \
	bkp pg wal-fetch "$seg6" "$SRV/seg6"
t_is "$(grep -c warning "$T/b6.err")" 0 "... and it warns of nothing"
bkf() { pg_as_server "$BUNKER" -q --repo "$T/bk/fresh" --key-file "$KEY" "$@"; }
t_rc 0 "a fresh repository" bkf init
bf=$(bkf --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint --archive-timeout 5 \
	2>"$T/bf.err")
t_is "$?" 0 "a base backup into a repository without WAL of the cluster (the server waits)" ||
	diag "$(cat "$T/bf.err")"
segf=$(pitr_segment_of "$(json_field "$bf" snapshot)" stop_lsn pg_sql bkf)
t_rc 0 "... and its stop segment ($segf) is in the main repository when it exits" \
	bkp pg wal-fetch "$segf" "$SRV/segf"
segf0=$(pitr_segment_of "$(json_field "$bf" snapshot)" start_lsn pg_sql bkf)
t_true "... and it warns that this repository lacks its WAL, from $segf0 on" \
	grep -q "^bunker: warning: snapshot [0-9a-f]\{16\} (pg/main/base) needs WAL file $segf0, which is not in this repository" "$T/bf.err" ||
	diag "$(cat "$T/bf.err")"
rm -rf "$T/bk/fresh"
# A wrong --cluster, archive_command pushing as 'main': the backup is taken (a copy
# promoted to a new production keeps its system identifier), with a warning naming
# 'main', and the WAL it lacks under 'other' is said to be archived here as 'main'.
bo=$(bkp --json --cluster other pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint \
	2>"$T/bo.err")
t_is "$?" 0 "a base backup with --cluster other of the system archived as 'main'" ||
	diag "$(cat "$T/bo.err")"
t_true "... warns that the system is archived here as cluster 'main'" grep -qx \
	"bunker: warning: system $(pg_sysid) is also archived here as cluster 'main' (--cluster main?)" \
	"$T/bo.err" || diag "$(cat "$T/bo.err")"
mo=$(bkp snapshots --json --name pg/other/base | snap_line "$(json_field "$bo" snapshot)")
sego=$(pg_sql "select pg_walfile_name('$(json_field "$mo" start_lsn)')")
t_true "... and that its WAL, from $sego on, is archived here under cluster 'main'" grep -qx \
	"bunker: warning: snapshot [0-9a-f]\{16\} (pg/other/base) needs WAL file $sego, which this repository archives under cluster 'main', not 'other' (--cluster main?)" \
	"$T/bo.err" || diag "$(cat "$T/bo.err")"
t_is "$(grep -c warning "$T/bo.err")" 2 "... two warnings, no more" || diag "$(cat "$T/bo.err")"
# Restoring it under that wrong --cluster: its WAL is not archived as 'other', and
# the refusal says where it is (it said "not archived yet" alone; found by a user's
# walk through the README)
t_rc 3 "pg restore --cluster other of that backup exits 3 (its WAL is archived as 'main')" \
	bkp --cluster other pg restore "$(json_field "$bo" snapshot)" --target "$SRV/other-restored"
t_true "... in one line naming cluster 'main'" grep -qx \
	"bunker: pg restore: WAL chain incomplete: segment $sego is not archived yet, but this repository archives it under cluster 'main', not 'other' (--cluster main?)" \
	"$ERR" || diag "$(cat "$ERR")"
t_one_line_error "... one line"
n_before=$(bkp snapshots --name pg/main/base | grep -c .)
pg_conf_set archive_command "false"
pg_reload
bkp pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint --archive-timeout 2 \
	>"$T/b7.out" 2>"$T/b7.err"
t_is "$?" 1 "with archiving failing, basebackup --archive-timeout 2 exits 1"
t_is "$(grep -c . "$T/b7.err")" 1 "... with one line" || diag "$(cat "$T/b7.err")"
id7=$(sed -n 's/.*snapshot \([0-9a-f]\{16\}\) (pg\/main\/base) is saved, but .*/\1/p' "$T/b7.err")
t_is "${#id7}" 16 "... saying which snapshot is saved" || diag "$(cat "$T/b7.err")"
seg7=$(pitr_segment_of "$id7" start_lsn)
t_true "... and naming the first missing segment ($seg7)" \
	grep -q "WAL file $seg7 did not reach the repository within 2 s" "$T/b7.err"
t_is "$(bkp snapshots --name pg/main/base | grep -c .)" "$((n_before + 1))" "... and the snapshot is kept"
# pg restore latest is then refused, its WAL not archived, naming the older backup
# that restores the WAL archived so far (found by review: it named none, and in an
# emergency that one holds the most recent state there is)
t_rc 3 "pg restore latest with the newest backup's WAL not archived: exit 3" \
	bkp pg restore latest --target "$SRV/r7"
t_true "... naming the older backup that restores" grep -qx \
	"bunker: pg restore: WAL chain incomplete: segment $seg7 is not archived yet; the older base backup [0-9a-f]\{16\}, which ended at [0-9: .-]*+00, restores the WAL archived so far (bunker pg restore [0-9a-f]\{16\})" \
	"$ERR" || diag "$(cat "$ERR")"
older=$(sed -n 's/.*(bunker pg restore \([0-9a-f]*\))$/\1/p' "$ERR")
t_true "... not the newest (${older:-none})" test -n "$older" -a "$older" != "$id7"
t_rc 0 "... which restores" bkp pg restore "$older" --target "$SRV/r7"
rm -rf "${SRV:?}/r7"
# A server gone silent: into a fresh repository (the server waits for the archiving
# itself) with archiving failing, the server sends nothing after the files, and
# --stall-timeout 2 gives up after 2 s, with one line, saving no snapshot. (Without
# the watchdog it waits for archiving for ever: `timeout` ends it, 124.)
t_rc 0 "a fresh repository" bkf init
t0=$(date +%s)
pg_as_server timeout 60 "$BUNKER" -q --repo "$T/bk/fresh" --key-file "$KEY" pg basebackup \
	--dbname "$(pitr_conninfo)" --fast-checkpoint --stall-timeout 2 >"$T/bs.out" 2>"$T/bs.err"
t_is "$?" 1 "with the server waiting for failing archiving, basebackup --stall-timeout 2 exits 1"
t_is "$(cat "$T/bs.err")" \
	"bunker: basebackup: base backup: the server sent nothing for 2 s (stall timeout)" \
	"... saying the server went silent"
t_true "... after about 2 s ($(( $(date +%s) - t0 )) s, the checkpoint and files included)" \
	test "$(( $(date +%s) - t0 ))" -lt 20
t_is "$(bkf snapshots --name pg/main/base | grep -c .)" 0 "... and saves no snapshot"
rm -rf "$T/bk/fresh"
# A host that takes the connection and never answers: --stall-timeout bounds the
# connection's start too (libpq's connect_timeout; before, the command waited for
# ever), unless the connection string sets its own.
python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])' >"$T/mute.port" &
mute=$!
at_exit "kill $mute"
for _ in $(seq 50); do [ -s "$T/mute.port" ] && break; sleep 0.1; done
mute_ci="host=127.0.0.1 port=$(cat "$T/mute.port") user=postgres"
t0=$(date +%s)
pg_as_server timeout 30 "$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg basebackup \
	--dbname "$mute_ci" --stall-timeout 2 >"$T/mute.out" 2>"$T/mute.err"
t_is "$?" 1 "a host that never answers: basebackup --stall-timeout 2 exits 1"
t_true "... after about 2 s ($(( $(date +%s) - t0 )) s)" test "$(( $(date +%s) - t0 ))" -lt 20
t_true "... saying the connection timed out" grep -q "^bunker: basebackup: connect: .*timeout expired" \
	"$T/mute.err" || diag "$(cat "$T/mute.err")"
pg_as_server timeout 3 "$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg basebackup \
	--dbname "$mute_ci connect_timeout=0" --stall-timeout 2 >/dev/null 2>&1
t_is "$?" 124 "... but connect_timeout=0 in --dbname waits, as the user asked"
kill "$mute"
pg_conf_set archive_command "$(pitr_archive_command)"
pg_reload
t_true "archiving works again and archives $seg7" pitr_wait_archived "$seg7" 120
t_rc 0 "... which the repository then holds" bkp pg wal-fetch "$seg7" "$SRV/seg7"
t_rc 2 "--archive-timeout takes a number of seconds" \
	bkp pg basebackup --dbname "$(pitr_conninfo)" --archive-timeout 1x
for secs in -1 1x 86401 ""; do
	t_rc 2 "--stall-timeout '$secs' is refused: 0 to 86400 s" \
		bkp pg basebackup --dbname "$(pitr_conninfo)" --stall-timeout "$secs"
done
for rate in 31 1025M 2G 1.5M x; do
	t_rc 2 "--max-rate $rate is refused: 32 kB/s to 1 GB/s, in kB/s or with a suffix k or M" \
		bkp pg basebackup --dbname "$(pitr_conninfo)" --max-rate "$rate"
done
t_rc 2 "--max-rate 32k with --stall-timeout 1 is refused: one 32 kB message takes 1 s" \
	bkp pg basebackup --dbname "$(pitr_conninfo)" --max-rate 32k --stall-timeout 1
t_true "... saying what it must be at least" grep -q \
	"^bunker: --stall-timeout 1 s is too short for --max-rate 32k: the server sends 32 kB at a time, so at least 2 s" "$ERR"

# TCP keepalives (pg/conninfo.h): over TCP the replication connection's socket
# probes after 60 s idle (the system's default is two hours), unless --dbname says
# otherwise. ss(8) shows the socket's keepalive timer.
keepalive_timer() { # DBNAME: the timer of basebackup's connection to the server
	local pid bk= t=
	pg_as_server "$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg basebackup --dbname "$1" \
		--max-rate 32k --stall-timeout 0 >/dev/null 2>&1 &
	pid=$!
	local line lport
	for _ in $(seq 100); do
		bk=${bk:-$(pgrep -n -f "^$BUNKER .*pg basebackup --dbname $1 --max-rate 32k")}
		line=$(ss -tnoHp state established "( dport = :$PGPORT )" 2>/dev/null |
			grep "\"bunker\",pid=${bk:-none}," | head -n 1)
		lport=$(printf '%s' "$line" | awk '{print $3}')
		lport=${lport##*:}
		# bunker sets the socket's keepalives once connected, before BASE_BACKUP:
		# read the timer once the server has that command from this socket
		if [ -n "$lport" ] && [ "$(pg_sql "select count(*) from pg_stat_activity
			where client_port = $lport and query like 'BASE_BACKUP%'")" = 1 ]; then
			t=$(ss -tnoHp state established "( sport = :$lport )" 2>/dev/null |
				grep -o 'timer:(keepalive,[^,]*' | head -n 1)
			[ -n "$t" ] && break
		fi
		sleep 0.1
	done
	[ -z "$bk" ] || kill -TERM "$bk" 2>/dev/null
	wait "$pid" 2>/dev/null
	for _ in $(seq 100); do [ -n "$bk" ] && kill -0 "$bk" 2>/dev/null || break; sleep 0.1; done
	printf '%s\n' "${t#timer:(keepalive,}"
}
t=$(keepalive_timer "host=127.0.0.1 port=$PGPORT user=postgres")
t_true "over TCP, basebackup's connection probes after 60 s idle (timer $t)" \
	sh -c "printf '%s' '$t' | grep -Eqx '([0-9]|[1-5][0-9]|60)sec|1min'"
t=$(keepalive_timer "host=127.0.0.1 port=$PGPORT user=postgres keepalives_idle=300")
t_true "... after 300 s with keepalives_idle=300 in --dbname (timer $t)" \
	sh -c "printf '%s' '$t' | grep -Eqx '4min[0-9]*sec|5min'"
# A pg_service.conf service's settings count as the string's (libpq reads them at
# connect, after the options it is given).
printf '[ka]\nhost=127.0.0.1\nport=%s\nuser=postgres\nkeepalives_idle=200\n[plain]\nhost=127.0.0.1\nport=%s\nuser=postgres\n' \
	"$PGPORT" "$PGPORT" >"$T/services"
chmod 644 "$T/services"
t=$(PGSERVICEFILE=$T/services keepalive_timer "service=ka")
t_true "... after 200 s with keepalives_idle=200 in the service it names (timer $t)" \
	sh -c "printf '%s' '$t' | grep -Eqx '3min[0-9]*sec|3min20sec'"
t=$(PGSERVICEFILE=$T/services keepalive_timer "service=plain")
t_true "... after 60 s with a service that sets none (timer $t)" \
	sh -c "printf '%s' '$t' | grep -Eqx '([0-9]|[1-5][0-9]|60)sec|1min'"
# sslpassword, as password, is overwritten in bunker's own arguments once it runs
# (ps shows every user a command line)
pg_as_server "$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg basebackup --max-rate 32k \
	--stall-timeout 0 --dbname "host=127.0.0.1 port=$PGPORT user=postgres sslpassword=k3y-s3cr3t" \
	>/dev/null 2>&1 &
pid=$!
bk= args=
for _ in $(seq 100); do
	bk=${bk:-$(pgrep -n -f "^$BUNKER .*pg basebackup --max-rate 32k --stall-timeout 0 --dbname")}
	[ "$(pg_sql "select count(*) from pg_stat_activity where backend_type = 'walsender'
		and application_name = 'bunker'")" = 1 ] && break
	sleep 0.1
done
[ -n "$bk" ] && args=$(tr '\0' ' ' <"/proc/$bk/cmdline")
[ -z "$bk" ] || kill -TERM "$bk" 2>/dev/null
wait "$pid" 2>/dev/null
case $args in
*k3y*) shown="the sslpassword" ;;
*"user='postgres'"*) shown="the rest" ;;
*) shown="not the connection string" ;;
esac
t_is "$shown" "the rest" "basebackup's command line, once it runs, holds no sslpassword" ||
	diag "$args"

# On a terminal (script(1) gives it one): a line while the server's spread
# checkpoint is awaited, then the progress, bytes and MB/s of the estimated total.
pg_as_server script -qec "'$BUNKER' --repo '$REPO' --key-file '$KEY' pg basebackup \
	--dbname '$(pitr_conninfo)'" /dev/null >"$T/tty.out" 2>&1
t_is "$?" 0 "pg basebackup on a terminal, without --fast-checkpoint" || diag "$(cat -v "$T/tty.out")"
t_true "... says it waits for the server's next checkpoint" grep -q \
	"^waiting for the server's next checkpoint (--fast-checkpoint asks for one at once)" \
	"$T/tty.out"
t_true "... shows progress: MB of the estimated total, and MB/s" grep -aq \
	"[0-9]\.[0-9] / [0-9]*\.[0-9] MB  [0-9]*\.[0-9] MB/s" "$T/tty.out" ||
	diag "$(cat -v "$T/tty.out")"
pg_as_server script -qec "'$BUNKER' --repo '$REPO' --key-file '$KEY' pg basebackup \
	--dbname '$(pitr_conninfo)' --fast-checkpoint" /dev/null >"$T/tty2.out" 2>&1
t_true "... but not with --fast-checkpoint" sh -c "! grep -q waiting '$T/tty2.out'"

# A server configured from outside its data directory (Debian's layout): its base
# backup holds no postgresql.conf (restored at the end).
mv "$PG_DATA/postgresql.conf" "$T/postgresql.conf.aside"
b4=$(bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint 2>"$T/b4.err")
t_is "$?" 0 "pg basebackup without postgresql.conf in the data directory" ||
	diag "$(cat "$T/b4.err")"
mv "$T/postgresql.conf.aside" "$PG_DATA/postgresql.conf"
id4=$(json_field "$b4" snapshot)
# One whose pg_hba.conf is a symbolic link, which the server does not send (it
# warns, "skipping special file"): restored silently, it did not start
mv "$PG_DATA/pg_hba.conf" "$T/pg_hba.conf.aside"
pg_as_server ln -s "$T/pg_hba.conf.aside" "$PG_DATA/pg_hba.conf"
b7=$(bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint 2>"$T/b7.err")
t_is "$?" 0 "pg basebackup with pg_hba.conf a symbolic link" || diag "$(cat "$T/b7.err")"
rm "$PG_DATA/pg_hba.conf"
mv "$T/pg_hba.conf.aside" "$PG_DATA/pg_hba.conf"
id7=$(json_field "$b7" snapshot)

# A host whose clock is 600 s behind the server's: the backup's end time is taken
# in the server's clock (restores compare it with the server's commit times).
if [ -f "${CLOCK_SKEW_LIB:-}" ]; then
	t_rc 0 "pg basebackup with this host's clock 600 s behind the server's" \
		pg_as_server env LD_PRELOAD="$CLOCK_SKEW_LIB" CLOCK_SKEW_S=-600 \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$BUNKER" -q --repo "$REPO" --key-file "$KEY" --json pg basebackup \
		--dbname "$(pitr_conninfo)" --fast-checkpoint
	# (read from backup_label's tar mtime, the server's clock in whole seconds when
	# it sent it, at its arrival: 598 seen on a busy machine, the label 2 s late)
	t_true "... warns that the clocks disagree" grep -Eq \
		"^bunker: warning: this host's clock is (597|598|599|600|601) s behind the database server's: the backup's end time is taken in the server's clock$" \
		"$ERR" || diag "$(cat "$ERR")"
	id5=$(json_field "$(cat "$OUT")" snapshot)
	when=$(bkp snapshots --json --name pg/main/base | snap_line "$id5" | sed -n 's/.*"time":"\([^"]*\)".*/\1/p')
	server_now=$(pg_sql "select extract(epoch from now())::bigint")
	t_true "... records its end in the server's clock ($when, server now $server_now)" \
		test -n "$when" -a "$(( server_now - $(date -d "$when" +%s) ))" -ge -5 -a \
		"$(( server_now - $(date -d "$when" +%s) ))" -le 30
else
	skip "clock-skew library not built (CLOCK_SKEW_LIB)"
fi

# ---- a page that fails its checksum (the cluster has data checksums) ----
# The server warns of it and ends the backup in an error: no snapshot is saved.
# With --no-verify-checksums it does not check, and the backup is taken.
pg_sql "create table ck (x text)" >/dev/null
pg_sql "insert into ck select repeat('c', 100) from generate_series(1, 50)" >/dev/null
pg_sql "checkpoint" >/dev/null
ck=$(pg_sql "select pg_relation_filepath('ck')")
flip_byte "$PG_DATA/$ck" 8000 # in a row, at the block's end (its header is sound)
nbase() { bkp snapshots --name pg/main/base | grep -c ' pg/main/base'; }
n0=$(nbase)
t_rc 1 "pg basebackup of a cluster with a page that fails its checksum: exit 1" \
	bkp pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint
t_true "... passing on the server's warning, naming the file" \
	grep -q "^bunker: warning: server: checksum verification failed in file \"./$ck\", block 0" \
	"$ERR" || diag "$(cat "$ERR")"
t_true "... and its error" grep -q "checksum verification failure during base backup" "$ERR"
t_is "$(nbase)" "$n0" "... and saves no snapshot ($n0 base backups)"
t_rc 0 "with --no-verify-checksums, the backup is taken" \
	bkp pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint --no-verify-checksums
t_is "$(nbase)" "$((n0 + 1))" "... one more base backup"
t_is "$(grep -c checksum "$ERR")" 0 "... with no word of checksums"

# ---- a backup whose files are a uid's that no user here has (another host's) ----
# As root, the restore gives the files to PG_VERSION's owner: that uid is no one's
# here (found by review: the files went to it, and the server, run as postgres,
# refused them), so it is refused, naming --owner, which gives them all to a user.
if [ "$(id -u)" = 0 ]; then
	nouid=54321
	while getent passwd "$nouid" >/dev/null; do nouid=$((nouid + 1)); done
	chown "$nouid" "$PG_DATA/PG_VERSION" && chmod 0644 "$PG_DATA/PG_VERSION"
	b6=$(bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint \
		--no-verify-checksums 2>"$T/b6.err") # (ck's damaged page, above)
	t_is "$?" 0 "a base backup whose PG_VERSION is uid $nouid's, whom no user here has" ||
		diag "$(cat "$T/b6.err")"
	chown postgres: "$PG_DATA/PG_VERSION" && chmod 0600 "$PG_DATA/PG_VERSION"
	id6=$(json_field "$b6" snapshot)
	t_rc 2 "as root, its restore is refused" \
		"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg restore "$id6" --target "$SRV/r6"
	t_true "... naming the uid and --owner" grep -q \
		"the backup's files are uid $nouid's, and no user here has that uid .*pass --owner USER" \
		"$ERR" || diag "$(cat "$ERR")"
	t_true "... before writing anything" test ! -e "$SRV/r6"
	t_rc 2 "--owner with no such user is refused" "$BUNKER" -q --repo "$REPO" --key-file "$KEY" \
		pg restore "$id6" --target "$SRV/r6" --owner bunker-no-such-user
	t_rc 0 "with --owner postgres, it restores" "$BUNKER" -q --repo "$REPO" --key-file "$KEY" \
		pg restore "$id6" --target "$SRV/r6" --owner postgres
	t_is "$(stat -c %U "$SRV/r6/PG_VERSION") $(find "$SRV/r6" ! -user postgres | wc -l)" \
		"postgres 0" "... every file postgres's, PG_VERSION too"
	rm -rf "$SRV/r6"
	t_rc 2 "--owner as another user than root is refused" \
		bkp pg restore "$id6" --target "$SRV/r6" --owner postgres
else
	ok "# SKIP restores as root: the tests do not run as root"
fi

last=$(pitr_switch_wal)
t_true "the final segment ($last) is archived" pitr_wait_archived "$last" 120

# The original's final state.
state_sql="select (select count(*) from pgbench_history) || ' ' ||
  (select sum(delta) from pgbench_history) || ' ' ||
  (select md5(string_agg(aid || ':' || abalance, ',' order by aid)) from pgbench_accounts) || ' ' ||
  (select md5(string_agg(tid || ':' || tbalance, ',' order by tid)) from pgbench_tellers) || ' ' ||
  (select md5(string_agg(bid || ':' || bbalance, ',' order by bid)) from pgbench_branches) || ' ' ||
  (select md5(string_agg(md5(b), ',' order by id)) from blobs)"
want=$(pg_sql "$state_sql")
pg_stop

# ---- restore the backup taken under load ----
t_rc 0 "pg restore of the backup taken under load" bkp pg restore "$id1" --target "$SRV/r"
t_is "$(stat -c %Y "$SRV/r/moon.txt")" "$(date -d '1969-07-20 00:00:00 UTC' +%s)" \
	"... its file dated 1969-07-20 restored with that date"
if pitr_start "$SRV/r" && pitr_wait_recovered 180; then
	ok "the restored server recovers and promotes"
	t_true "it reached a consistent recovery state" \
		grep -q "consistent recovery state reached" "$R_LOG"
	t_true "it restored the backup's WAL from the archive" grep -q 'restored log file' "$R_LOG"
	rsql "create extension amcheck" >/dev/null
	n=$(rsql "select count(*) from (select bt_index_check(c.oid, true)
	    from pg_index i join pg_class c on c.oid = i.indexrelid join pg_am a on a.oid = c.relam
	    where a.amname = 'btree' and c.relnamespace = 'public'::regnamespace) x" 2>"$T/amcheck.err")
	t_true "bt_index_check (heapallindexed) passes on every btree index ($n)" \
		test "${n:-0}" -ge 4 || diag "$(cat "$T/amcheck.err")"
	bad=$(rsql "select c.relname || ': ' || v.msg from pg_class c, verify_heapam(c.oid) v
	    where c.relkind = 'r' and c.relnamespace = 'public'::regnamespace" 2>&1)
	t_is "$bad" "" "verify_heapam finds no corruption in any table"
	inv=$(rsql "select (select sum(abalance) from pgbench_accounts) || ' ' ||
	    (select sum(tbalance) from pgbench_tellers) || ' ' ||
	    (select sum(bbalance) from pgbench_branches) || ' ' ||
	    (select sum(delta) from pgbench_history)")
	read -r sa st sb sh <<<"$inv"
	t_true "pgbench invariant: accounts = tellers = branches = history ($inv)" \
		test -n "$sh" -a "$sa" = "$st" -a "$st" = "$sb" -a "$sb" = "$sh"
	t_true "some transactions happened ($(rsql "select count(*) from pgbench_history") in history)" \
		test "$(rsql "select count(*) from pgbench_history")" -gt 100
	t_is "$(rsql "$state_sql")" "$want" "the restored tables equal the original's final state"
	t_is "$(rsql "show archive_cleanup_command")" "" "... the original's archive_cleanup_command unset"
	t_true "... and its recovery_end_command not run" test ! -e "$SRV/end-ran"
	errs=$(grep -E 'PANIC|FATAL|invalid (record|page|checkpoint)' "$R_LOG" | grep -v 'the database system is' | head -n 5)
	t_is "$errs" "" "no errors in the restored server's log"
	pitr_stop
else
	not_ok "the restored server recovers and promotes" "$(pitr_log_tail 25)"
fi

# ---- restore the last backup: the rows changed before it started are there ----
t_rc 0 "pg restore of the last backup (files reused from the one before)" \
	bkp pg restore "$id3" --target "$SRV/r3"
if pitr_start "$SRV/r3" && pitr_wait_recovered 180; then
	t_is "$(rsql "$state_sql")" "$want" "its tables equal the original's final state"
	pitr_stop
else
	not_ok "the last backup's restored server recovers" "$(pitr_log_tail 25)"
fi

# ---- a server configured from outside its data directory (Debian's layout) ----
# Its base backup (b4) holds no postgresql.conf: the restore says so, and what to do.
t_rc 0 "pg restore of it" bkp pg restore "$id4" --target "$SRV/r4"
t_true "... warns that it holds no postgresql.conf, naming the files to copy" grep -q \
	"^bunker: warning: the backup holds no postgresql.conf .*copy it, pg_hba.conf, pg_ident.conf and any directory it includes (Debian's conf.d) into $SRV/r4, and in the copy remove data_directory, hba_file, ident_file and external_pid_file, which point at the original cluster$" \
	"$ERR" || diag "$(cat "$ERR")"
t_rc 0 "a restore of a backup holding one" bkp pg restore "$id3" --target "$SRV/r5"
t_true "... does not" test ! -s "$ERR"
t_rc 0 "pg restore of the backup without pg_hba.conf (a link the server skipped)" \
	bkp pg restore "$id7" --target "$SRV/r7"
t_true "... warns that it holds none" grep -q \
	"^bunker: warning: the backup holds no pg_hba.conf (the server does not send one that is a symbolic link): copy it into $SRV/r7, " \
	"$ERR" || diag "$(cat "$ERR")"
rm -rf "$SRV/r4" "$SRV/r5" "$SRV/r7"

t_rc 0 "bunker check" bkp check

done_testing
