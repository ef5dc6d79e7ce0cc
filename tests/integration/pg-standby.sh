#!/bin/bash
# pg-standby.sh: `bunker pg basebackup` from a streaming standby, while the primary
# archives its WAL into the same repository with `bunker pg wal-push`. A standby
# switches no segment at the backup's stop, so its stop segment reaches the archive
# only when the primary finishes it: basebackup must leave that wait to the server's
# rules (none without archive_mode = always) and exit 0 at once, not wait for the
# repository (which, on an idle primary, would time out and exit 1). Once the primary
# has archived that segment (basebackup warns that it is not there yet), the standby's
# backup restores with `bunker pg restore` and the restored server has the rows the
# standby had replayed before the backup.
# The restored configuration keeps archive_mode unless pg restore --archive-mode off.
# Then a failover: rows written on the primary, which fails; the standby, promoted,
# archives timeline 1's last segment as a .partial, and its timeline 2's segment of
# that number only once it is finished. Until then recovery (which never reads a
# .partial) ends before those rows: pg restore warns and pg info says so (and that
# timeline 1's WAL ends in the .partial, in its line and --json's "partial"), naming
# both files, and neither warns once the segment is archived (found by review: both
# were silent, and the restored server lacked the rows).
. "$SRCDIR/tests/integration/lib-pitr.sh"
pitr_init pg-standby

pg_start "$T/pg" || { echo "Bail out! PostgreSQL did not start"; exit 1; }
pitr_archiving_on || { echo "Bail out! restart with archiving failed"; exit 1; }
pg_sql "create table t (id int primary key, v text)" >/dev/null
pg_sql "insert into t select g, md5(g::text) from generate_series(1, 5000) g" >/dev/null
seg=$(pitr_switch_wal)
t_true "the primary archives into the repository ($seg)" pitr_wait_archived "$seg" 60

# The standby: a copy of the primary that streams from it (pg_basebackup -R).
pg_as_server "$PG_BIN/pg_basebackup" -h "$PG_SOCKDIR" -p "$PGPORT" -U postgres \
	-D "$SRV/standby" -R -X stream -c fast >"$T/pg_basebackup.log" 2>&1
t_is "$?" 0 "pg_basebackup -R makes a standby" || diag "$(tail -n 5 "$T/pg_basebackup.log")"
if ! pitr_start "$SRV/standby" -c hot_standby=on; then
	not_ok "the standby starts" "$(pitr_log_tail 20)"
	done_testing
	exit
fi
ok "the standby starts"
t_is "$(rsql "select pg_is_in_recovery()")" t "... and is in recovery"

# Waits until the standby replayed what the primary wrote so far: up to lsn, which
# it sets.
wait_replayed() {
	lsn=$(pg_sql "select pg_current_wal_lsn()")
	for _ in $(seq 1 300); do
		[ "$(rsql "select pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return
		sleep 0.1
	done
}
pg_sql "insert into t select g, 'after' from generate_series(5001, 6000) g" >/dev/null
wait_replayed
t_is "$(rsql "select count(*) from t")" 6000 "the standby replayed the primary's rows"

standby_conninfo="host=$R_SOCK port=$R_PORT user=postgres dbname=postgres"
start=$(date +%s)
b=$(bkp --json pg basebackup --dbname "$standby_conninfo" --fast-checkpoint --archive-timeout 10 \
	2>"$T/b.err")
t_is "$?" 0 "pg basebackup from the standby exits 0" || diag "$(cat "$T/b.err")"
secs=$(($(date +%s) - start))
t_true "... without waiting for the repository (${secs} s)" test "$secs" -lt 10
id=$(printf '%s' "$b" | sed -n 's/.*"snapshot":"\([0-9a-f]*\)".*/\1/p')
t_is "${#id}" 64 "basebackup --json prints the snapshot id"
meta=$(bkp snapshots --json --name pg/main/base)
t_true "its backup_label says BACKUP FROM: standby" grep -q 'BACKUP FROM: standby' <<<"$meta"
stop_seg=$(pg_sql "select pg_walfile_name('$(printf '%s' "$meta" | sed -n 's/.*"stop_lsn":"\([0-9A-F/]*\)".*/\1/p')')")
t_true "... and it warns that WAL it needs ($stop_seg) is not in the repository yet" \
	grep -q "^bunker: warning: snapshot .* needs WAL file $stop_seg, which is not in this repository" "$T/b.err" ||
	diag "$(cat "$T/b.err")"
pitr_stop

# Its stop segment is archived when the primary finishes it.
last=$(pitr_switch_wal)
t_true "the primary archives $last" pitr_wait_archived "$last" 60
pg_stop

t_rc 0 "pg restore of the standby's backup" bkp pg restore "$id" --target "$SRV/r"
# archive_mode: kept from the backup by default (a restored primary goes on
# archiving), off with --archive-mode off (a trial restore beside the original must
# not archive into its repository); `postgres -C` reads the configuration files only
# (pitr_start below forces archive_mode off on the command line, as every test
# server here does).
conf_archive_mode() { pg_as_server "$PG_BIN/postgres" -C archive_mode -D "$1" 2>&1; }
t_is "$(conf_archive_mode "$SRV/r")" on "the restored configuration keeps archive_mode on"
t_rc 0 "pg restore --archive-mode off" bkp pg restore "$id" --target "$SRV/r-off" --archive-mode off
t_is "$(conf_archive_mode "$SRV/r-off")" off "... writes archive_mode = off"
# ... which holds over a file the configuration includes, where the restore
# comments out nothing: postgresql.auto.conf is read last (an include added
# here stands for one the backup's postgresql.conf had)
echo "archive_mode = on" >"$SRV/r-off/archive.conf"
echo "include 'archive.conf'" >>"$SRV/r-off/postgresql.conf"
t_is "$(conf_archive_mode "$SRV/r-off")" off "... also over archive_mode = on in an included file"
rm -rf "$SRV/r-off"
t_rc 0 "pg restore --archive-mode preserve" bkp pg restore "$id" --target "$SRV/r-keep" --archive-mode preserve
t_is "$(conf_archive_mode "$SRV/r-keep")" on "... keeps archive_mode on"
rm -rf "$SRV/r-keep"
t_rc 2 "--archive-mode takes preserve or off" \
	bkp pg restore "$id" --target "$SRV/r-bad" --archive-mode maybe
t_true "... and writes nothing" test ! -e "$SRV/r-bad"
if pitr_start "$SRV/r" && pitr_wait_recovered 120; then
	ok "the restored server recovers and promotes"
	t_is "$(rsql "select count(*) || ' ' || count(*) filter (where v = 'after') from t")" "6000 1000" \
		"it has every row the standby had replayed"
	pitr_stop
else
	not_ok "the restored server recovers and promotes" "$(pitr_log_tail 25)"
fi

# ---- a failover: WAL archived only in a .partial ----
pg_as_server "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null 2>&1 ||
	{ echo "Bail out! the primary did not start again"; exit 1; }
if ! pitr_start "$SRV/standby" -c hot_standby=on -c archive_mode=on \
	-c "archive_command=$(pitr_archive_command main)"; then
	not_ok "the standby starts again, archiving once promoted" "$(pitr_log_tail 20)"
	done_testing
	exit
fi
pg_sql "insert into t select g, 'failover' from generate_series(6001, 6100) g" >/dev/null
wait_replayed
t_is "$(rsql "select count(*) from t where v = 'failover'")" 100 \
	"the standby replayed the rows written just before the primary fails"
# (a primary stopped cleanly while archiving switches its segment and archives it,
# leaving only the shutdown checkpoint to the .partial)
pg_as_server "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 60 stop >/dev/null 2>&1
t_is "$(rsql "select pg_promote()")" t "the standby is promoted"
partial=$(cd "$R_DATA/pg_wal" && ls -- *.partial 2>/dev/null)
seg2=00000002${partial:8:16}
t_true "it archives timeline 1's last segment as $partial" rwait_archived "$partial"
t_true "... and 00000002.history" rwait_archived 00000002.history
t_true "... but not $seg2, which it is writing" test ! -e "$R_DATA/pg_wal/archive_status/$seg2.done"
# the LSN at the start of that segment (16 MiB segments)
at=$(printf '%X/%X' $((16#${partial:8:8})) $((16#${partial:16:8} * 16777216)))
want="bunker: warning: WAL past $at on timeline 1 is archived only in $partial, which recovery does not read: until $seg2 is archived, the restore ends at $at"
t_rc 0 "pg restore with timeline 2 begun in $seg2 not archived yet: exit 0" \
	bkp pg restore --target "$SRV/p1"
t_true "... warning that WAL past $at is only in $partial" grep -qxF "$want" "$ERR" ||
	diag "$(cat "$ERR")"
t_rc 0 "pg info" bkp pg info
t_true "... says so in the window" grep -q \
	"^  base  ${id:0:16}  .* restorable to: [0-9A-F/]* \.\. [0-9A-F/]*, then WAL only in $partial, which recovery does not read, until $seg2 is archived" \
	"$OUT" || diag "$(cat "$OUT")"
t_true "... in timeline 1's line" grep -q \
	"^  timeline 1: 00000001[0-9A-F]* \.\. 00000001[0-9A-F]*, then $partial (the last archived .*), [0-9]* segments, 0 missing$" \
	"$OUT" || diag "$(cat "$OUT")"
t_rc 0 "pg info --json" bkp --json pg info
t_true "... in restore_window" grep -q \
	"\"restore_window\":\"[0-9A-F/]* \.\. [0-9A-F/]*, then WAL only in $partial, which recovery does not read, until $seg2 is archived\"" \
	"$OUT" || diag "$(cat "$OUT")"
# tl_partial: each timeline of pg info --json's $OUT and its "partial", in valid JSON
tl_partial() {
	python3 -m json.tool "$OUT" >/dev/null &&
		python3 -c 'import json, sys
for t in json.load(open(sys.argv[1]))["timelines"]: print(t["timeline"], t["partial"])' "$OUT"
}
t_is "$(tl_partial)" "1 $partial" "... and timeline 1's WAL ends in it (\"partial\")" ||
	diag "$(cat "$OUT")"
# a timeline whose only archived file is a .partial has its line too (a cluster
# name of its own, given a copy of that .partial alone)
mkdir -p "$T/solo"
cp "$R_DATA/pg_wal/$partial" "$T/solo/" && chmod -R a+rX "$T/solo"
t_rc 0 "a cluster archiving only $partial" bkp pg wal-push --cluster solo "$T/solo/$partial"
t_rc 0 "... pg info" bkp pg info --cluster solo
t_true "... gives timeline 1 a line naming it" grep -qx "  timeline 1: only $partial, 0 segments, 0 missing" \
	"$OUT" || diag "$(cat "$OUT")"
t_rc 0 "... pg info --json" bkp --json pg info --cluster solo
t_is "$(python3 -c 'import json, sys
for t in json.load(open(sys.argv[1]))["timelines"]: print(t["timeline"], t["first"], t["last"], t["segments"], t["partial"])' "$OUT")" \
	"1 None None 0 $partial" "... with first and last null, 0 segments, and the .partial" || diag "$(cat "$OUT")"
t_rc 3 "pg restore --target-lsn of the last row: refused" \
	bkp pg restore --target-lsn "$lsn" --target "$SRV/p-lsn"
t_true "... saying the same" grep -qF "; ${want#bunker: warning: }" "$ERR" || diag "$(cat "$ERR")"
# what the warning says: the restored server ends before the failover's rows (the
# new primary runs on: stopped, it would switch and archive that segment)
primary=("$R_DATA" "$R_PORT" "$R_SOCK" "$R_LOG")
if pitr_start "$SRV/p1" && pitr_wait_recovered 120; then
	t_is "$(rsql "select count(*) || ' ' || count(*) filter (where v = 'failover') from t")" "6000 0" \
		"the server restored then lacks the rows written before the failover"
else
	not_ok "the server restored then recovers" "$(pitr_log_tail 25)"
fi
pitr_stop
R_DATA=${primary[0]} R_PORT=${primary[1]} R_SOCK=${primary[2]} R_LOG=${primary[3]}

t_is "$(rswitch_wal)" "$seg2" "timeline 2 finishes $seg2"
t_true "... and archives it" rwait_archived "$seg2"
pitr_stop
t_rc 0 "pg restore with $seg2 archived" bkp pg restore --target "$SRV/p2"
t_true "... warns of no .partial" test ! -s "$ERR" || diag "$(cat "$ERR")"
# (but for timeline 1's WAL, which still ends in it)
no_partial() { ! grep -v "^  timeline 1: .*, then $partial " "$1" | grep -q partial; }
t_rc 0 "pg info" bkp pg info
t_true "... nor does pg info" no_partial "$OUT" || diag "$(cat "$OUT")"
t_true "... but for timeline 1's line" grep -q "^  timeline 1: .*, then $partial " "$OUT"
t_rc 0 "pg info --json" bkp --json pg info
t_true "... nor its restore_window" sh -c "! grep -q '\"restore_window\":\"[^\"]*partial' '$OUT'" ||
	diag "$(cat "$OUT")"
t_is "$(tl_partial)" "1 $partial
2 None" "... timeline 1's WAL ends in $partial, timeline 2's in no .partial" || diag "$(cat "$OUT")"
if pitr_start "$SRV/p2" && pitr_wait_recovered 120; then
	t_is "$(rsql "select count(*) filter (where v = 'failover') from t")" 100 \
		"the server restored then has the failover's rows"
	pitr_stop
else
	not_ok "the server restored then recovers" "$(pitr_log_tail 25)"
fi

# ---- a failover with the old primary stopped cleanly ----
# Timeline 2's primary gets a standby, which is promoted (timeline 3) while the old
# primary runs; the old primary is then stopped cleanly, which switches its segment at
# the fork and archives it after 00000003.history. That segment holds nothing past
# the fork but the switch: it is no timeline that went on, and a restore without
# --target-timeline follows timeline 3 (found by a helper's exploration: every
# restore was refused, exit 2, "timeline 2 went on after timeline 3 forked").
if ! pitr_start "$SRV/standby" -c archive_mode=on -c "archive_command=$(pitr_archive_command main)"; then
	not_ok "timeline 2's primary starts again" "$(pitr_log_tail 20)"
	done_testing
	exit
fi
old=("$R_DATA" "$R_PORT" "$R_SOCK" "$R_LOG")
pg_as_server "$PG_BIN/pg_basebackup" -h "$R_SOCK" -p "$R_PORT" -U postgres \
	-D "$SRV/standby3" -R -X stream -c fast >"$T/pg_basebackup3.log" 2>&1
t_is "$?" 0 "pg_basebackup -R makes it a standby" || diag "$(tail -n 5 "$T/pg_basebackup3.log")"
rsql "insert into t select g, 'fork' from generate_series(6101, 6200) g" >/dev/null
fork_lsn=$(rsql "select pg_current_wal_lsn()")
if ! pitr_start "$SRV/standby3" -c hot_standby=on -c archive_mode=on \
	-c "archive_command=$(pitr_archive_command main)"; then
	not_ok "the standby starts" "$(pitr_log_tail 20)"
	done_testing
	exit
fi
for _ in $(seq 1 300); do
	[ "$(rsql "select pg_last_wal_replay_lsn() >= '$fork_lsn'")" = t ] && break
	sleep 0.1
done
t_is "$(rsql "select count(*) from t where v = 'fork'")" 100 "the standby replayed the rows before the fork"
t_is "$(rsql "select pg_promote()")" t "the standby is promoted (timeline 3)"
pitr_stop "${old[0]}" # at once: the old primary's XLOG_SWITCH lands at the fork
t_true "... and archives 00000003.history" rwait_archived 00000003.history
rsql "insert into t select g, 'timeline 3' from generate_series(6201, 6300) g" >/dev/null
seg3=$(rswitch_wal)
t_true "timeline 3 archives $seg3" rwait_archived "$seg3"
pitr_stop
t_rc 0 "pg restore without --target-timeline, the old primary stopped cleanly" \
	bkp pg restore --target "$SRV/p3"
if [ -e "$SRV/p3/PG_VERSION" ] && pitr_start "$SRV/p3" && pitr_wait_recovered 120; then
	t_is "$(rsql "select count(*) filter (where v = 'fork') || ' ' || count(*) filter (where v = 'timeline 3') from t")" \
		"100 100" "the server restored then has the rows of both sides of the fork"
	pitr_stop
else
	not_ok "the server restored then recovers" "$(cat "$ERR") $(pitr_log_tail 25)"
fi

done_testing
