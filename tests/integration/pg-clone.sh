#!/bin/bash
# pg-clone.sh: a copy of the primary started as a primary (same system identifier,
# same timeline, same archive_command) archives into the cluster beside it. The copy
# switches a segment first, and its file takes the name; the primary's push of that
# name is refused (other bytes), and the primary archives nothing after it from then
# on, while the archive goes on with the copy's WAL and its age (the RPO) looks
# healthy. The refusal must not stay in the server's log alone (found by a helper's
# exploration): pg info names the refused file (and --json in "refused"), pg restore
# of a backup before it warns that recovery may read another server's WAL there,
# and `bunker check` reads the refusal's record (and names it once damaged, while pg
# info reports the rest).
. "$SRCDIR/tests/integration/lib-pitr.sh"
pitr_init pg-clone

pg_start "$T/pg" || { echo "Bail out! PostgreSQL did not start"; exit 1; }
pitr_archiving_on || { echo "Bail out! restart with archiving failed"; exit 1; }
pg_sql "create table t (id int primary key, who text)" >/dev/null
pg_sql "insert into t values (1, 'primary')" >/dev/null
t_rc 0 "pg basebackup of the primary" bkp --json pg basebackup --dbname "$(pitr_conninfo)" \
	--fast-checkpoint
id=$(snap_id_of "$OUT")
seg=$(pitr_switch_wal)
t_true "the primary archives $seg" pitr_wait_archived "$seg" 60
t_rc 0 "pg info before any clone" bkp pg info
t_true "... names no refused push" test -z "$(grep '^refused:' "$OUT")"

# The copy: pg_basebackup without -R, started as it is: crash recovery from its
# backup_label, then a primary of the same system, on timeline 1.
pg_as_server "$PG_BIN/pg_basebackup" -h "$PG_SOCKDIR" -p "$PGPORT" -U postgres \
	-D "$SRV/clone" -X stream -c fast >"$T/pg_basebackup.log" 2>&1
t_is "$?" 0 "pg_basebackup makes a copy of the primary" || diag "$(tail -n 5 "$T/pg_basebackup.log")"
if ! pitr_start "$SRV/clone" -c archive_mode=on -c "archive_command=$(pitr_archive_command main)" ||
	! pitr_wait_recovered 60; then
	not_ok "the copy starts as a primary" "$(pitr_log_tail 20)"
	done_testing
	exit
fi
ok "the copy starts as a primary"
t_is "$(rsql "select timeline_id from pg_control_checkpoint()")" 1 "... on timeline 1"
rsql "insert into t values (2, 'clone')" >/dev/null
won=$(rswitch_wal)
t_true "the copy archives $won first" rwait_archived "$won" 60

pg_sql "insert into t values (3, 'primary')" >/dev/null
mine=$(pitr_switch_wal)
t_is "$mine" "$won" "the primary then completes a segment of the same name"
failed=0
for _ in $(seq 1 300); do # (PostgreSQL retries after a second)
	failed=$(pg_sql "select failed_count from pg_stat_archiver")
	[ "$failed" -ge 2 ] && break
	sleep 0.1
done
t_true "... whose push is refused, and its retry ($failed failed)" test "$failed" -ge 2
t_is "$(pg_sql "select coalesce(last_failed_wal, '') from pg_stat_archiver")" "$won" \
	"... that name"
t_true "... in the server's log as other bytes" \
	grep -q "$won is already archived for cluster 'main' with different contents" "$PG_LOG"

t_rc 0 "pg info" bkp pg info
t_true "... names the refused push" grep -q \
	"^refused: a push of $won was refused at [0-9T:Z-]*: other bytes than the archived copy; the server that pushed it archives nothing after it, and the archive's copy may be another server's" \
	"$OUT" || diag "$(cat "$OUT")"
t_rc 0 "pg info --json" bkp pg info --json
t_true "... lists it in \"refused\"" grep -q \
	"\"refused\":\[{\"file\":\"$won\",\"refused_at\":\"[0-9T:Z-]*\",\"cut_short\":false}\]}$" \
	"$OUT" || diag "$(cat "$OUT")"
# (the refusal's record reads, and is the first one's: the server's retries leave
# no other)
t_rc 0 "bunker check reads the refusal's record" bkp check
t_is "$(find "$REPO/refused" -type f | wc -l)" 1 "... one record for the retried name"

t_rc 0 "pg restore of the backup from before the copy" \
	bkp pg restore "$id" --target "$SRV/r"
t_true "... warns that the WAL it reads may be another server's" grep -q \
	"^bunker: warning: a push of $won was refused at .*the archive's copy may be another server's" \
	"$ERR" || diag "$(cat "$ERR")"
pitr_stop

# a refusal's record damaged: check names it; pg info still reports the rest
rec=$(find "$REPO/refused" -type f)
printf '\xff' | dd of="$rec" bs=1 seek=40 conv=notrunc 2>/dev/null
t_rc 5 "a damaged refusal record: bunker check exits 5" bkp check
t_true "... naming it" grep -q "refused/main/$won" "$OUT" "$ERR" ||
	diag "$(cat "$OUT" "$ERR")"
t_rc 0 "... pg info --json still exits 0" bkp pg info --json
t_true "... with \"refused\":null" grep -q '"refused":null}$' "$OUT" || diag "$(cat "$OUT")"
t_true "... and a warning" grep -q "^bunker: warning: cannot read the refused pushes: .*refused/main/$won" \
	"$ERR" || diag "$(cat "$ERR")"
done_testing
