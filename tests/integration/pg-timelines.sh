#!/bin/bash
# pg-timelines.sh: timelines that fork from the same one. A server archives into the
# repository; after a base backup, row A, then B. A restore to a time between the
# two promotes to timeline 2 (A, C) and archives into the same repository and
# cluster; a second restore, along timeline 1 to its end, promotes to timeline 3
# (A, B, D), forking from timeline 1 too. While timeline 2 has archived nothing
# since timeline 3 began, `pg restore` follows timeline 3, as PostgreSQL's latest
# does. Once timeline 2 goes on archiving (two copies in production, or a trial
# copy promoted beside the real one), following the newest would drop timeline 2's
# WAL without a word: refused until --target-timeline says which.
. "$SRCDIR/tests/integration/lib-pitr.sh"
pitr_init pg-timelines

pg_start "$T/pg" || { echo "Bail out! PostgreSQL did not start"; exit 1; }
pg_conf_set autovacuum off
pitr_archiving_on || { echo "Bail out! restart with archiving failed"; exit 1; }
pg_sql "create table t (id int primary key, tag text not null)" >/dev/null
t_rc 0 "pg basebackup" bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint
id1=$(snap_id_of "$OUT")
pitr_switch_wal >/dev/null
pg_sql "insert into t values (1, 'A')" >/dev/null
sleep 1.1
ts_a=$(pitr_now)
sleep 1.1
pg_sql "insert into t values (2, 'B')" >/dev/null
last=$(pitr_switch_wal)
t_true "timeline 1's $last is archived" pitr_wait_archived "$last"
pg_stop

rows() { rsql "select string_agg(tag, ',' order by id) from t"; }
# promote SRV/NAME with archiving into the repository, insert (ID, TAG), archive
promote_and_insert() {
	local seg
	pitr_start "$SRV/$1" -c archive_mode=on -c "archive_command=$(pitr_archive_command main)" &&
		pitr_wait_recovered 120 || return 1
	rsql "insert into t values ($2, '$3')" >/dev/null
	seg=$(rswitch_wal)
	rwait_archived "$seg" || return 1
	pitr_stop
}
# restore_rows NAME WANT DESC ARGS...: pg restore ARGS into SRV/NAME, start it, compare rows
restore_rows() {
	local name=$1 want=$2 desc=$3
	shift 3
	t_rc 0 "$desc: pg restore $*" bkp pg restore "$@" --target "$SRV/$name" || return 1
	if pitr_start "$SRV/$name" && pitr_wait_recovered 120; then
		t_is "$(rows)" "$want" "$desc: the restored server holds $want"
	else
		not_ok "$desc: the restored server recovers" "$(pitr_log_tail 20)"
	fi
	pitr_stop
	rm -rf "${SRV:?}/$name"
}

t_rc 0 "a restore to a time between A and B" \
	bkp pg restore "$id1" --target "$SRV/tl2" --target-time "$ts_a"
t_true "... promotes to timeline 2, which archives C here" promote_and_insert tl2 3 C ||
	diag "$(pitr_log_tail 20)"
t_rc 0 "a second restore, along timeline 1 to its end" \
	bkp pg restore "$id1" --target "$SRV/tl3" --target-timeline 1
t_true "... promotes to timeline 3, which archives D here" promote_and_insert tl3 4 D ||
	diag "$(pitr_log_tail 20)"
t_true "timeline 3 forked from timeline 1" grep -q "^1	" "$SRV/tl3/pg_wal/00000003.history"

# timeline 2 archived nothing since timeline 3 began: the newest is followed
restore_rows r-tl3 A,B,D "timeline 2 quiet since timeline 3 began, no target" latest

# timeline 2 goes on archiving
t_true "timeline 2 archives W after timeline 3 began" promote_and_insert tl2 5 W ||
	diag "$(pitr_log_tail 20)"
t_rc 2 "pg restore latest without --target-timeline: refused" \
	bkp pg restore latest --target "$SRV/r-none"
t_true "... naming timeline 2's segment and both choices (found by review: it followed timeline 3, dropping C and W)" grep -q \
	"timeline 2 went on after timeline 3 began (00000002[0-9A-F]* was archived after 00000003.history; the two histories part at [0-9A-F]*/[0-9A-F]*, on timeline 1): --target-timeline 2 restores along timeline 2, --target-timeline latest along timeline 3$" \
	"$ERR" || diag "$(cat "$ERR")"
t_true "... and writes nothing" test ! -e "$SRV/r-none"
t_rc 2 "... the backup given by id: the same" bkp pg restore "$id1" --target "$SRV/r-none"
t_rc 0 "pg info" bkp pg info
t_true "... says the backup needs --target-timeline" grep -q \
	"^  base  ${id1:0:16}  .* restorable to: needs --target-timeline: timeline 2 went on after timeline 3 began (the two histories part at [0-9A-F]*/[0-9A-F]*, on timeline 1)$" \
	"$OUT" || diag "$(cat "$OUT")"
restore_rows r-tl2 A,C,W "--target-timeline 2" latest --target-timeline 2
restore_rows r-latest A,B,D "--target-timeline latest" latest --target-timeline latest

done_testing
