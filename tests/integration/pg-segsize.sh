#!/bin/bash
# pg-segsize.sh: a cluster with 1 MB WAL segments (initdb --wal-segsize=1; the other
# tests use 16 MB). The repository first learns of the cluster from `pg dump`, before
# any segment is pushed, and a second repository from `pg basebackup`: both must
# record the server's segment size, since every WAL chain is computed with it (with
# 16 MB assumed, basebackup's wait looked for segments that never come and pg restore
# refused for a missing one). While a repository holds no segment, only that record
# gives the size: a base backup's warning must name its start segment in 1 MB
# segments (once segments are archived, their size would tell, and mask a record
# written wrong). Then WAL is archived, a base backup taken and a row
# added; time targets after the last transaction are refused, with or without idle
# segments archived after it, and one before it is reached, also when the last
# commit is cut by a segment's end (and one after such a commit, whose time the
# segment holds, is refused, also behind 258 idle segments, past the 256 the walk
# once gave up at; not with BUNKER_TEST_QUICK=1); pg restore latest brings back a
# server with that row (its key file's name has a '%' that restore_command must
# escape). The cluster has group access (initdb -g): the restored data directory
# is 0750 as the original's, and the restored server runs with group access (the
# top came back 0700, and the server dropped it).
. "$SRCDIR/tests/integration/lib-pitr.sh"
pitr_init pg-segsize

PG_INITDB_OPTS="--wal-segsize=1 --allow-group-access" pg_start "$T/pg" || { echo "Bail out! PostgreSQL did not start"; exit 1; }
t_is "$(pg_sql "show wal_segment_size")" 1MB "the server has 1 MB segments"
pg_conf_set archive_mode on
pg_conf_set archive_command "true" # discarded until the repository knows the cluster
pg_restart || { echo "Bail out! restart with archive_mode on failed"; exit 1; }
pg_sql "create table t (id int primary key, v text)" >/dev/null
pg_sql "insert into t select g, md5(g::text) from generate_series(1, 20000) g" >/dev/null

t_rc 0 "pg dump claims the cluster in the repository" bkp pg dump --dbname "$(pitr_conninfo)"
# No WAL is archived here yet, so nothing but the cluster record gives the segment
# size: a base backup now warns that the repository lacks its start segment, named
# in 1 MB segments (the server waits for its own archive_command).
b0=$(bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint 2>"$T/b0.err")
t_is "$?" 0 "pg basebackup before any WAL is archived here"
seg0=$(pitr_segment_of "$(json_field "$b0" snapshot)" start_lsn)
t_true "it warns that the repository lacks $seg0, its start segment in 1 MB segments" \
	grep -q "needs WAL file $seg0, which is not in this repository" "$T/b0.err" ||
	diag "$(cat "$T/b0.err")"
pg_conf_set archive_command "$(pitr_archive_command)"
pg_reload
seg=$(pitr_switch_wal)
t_true "the server archives into the repository ($seg)" pitr_wait_archived "$seg"

t_rc 0 "pg basebackup, waiting in the repository for its WAL" \
	bkp --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint --archive-timeout 20
pg_sql "insert into t values (0, 'after the backup')" >/dev/null
seg=$(pitr_switch_wal)
t_true "the segment with the new row ($seg) is archived" pitr_wait_archived "$seg"
bkp pg info --json >"$T/info.json"
t_true "pg info: the newest WAL is $seg" grep -q "\"last\":\"$seg\"" "$T/info.json"
# the window ends at the last record archived: the switch, in $seg (as the server,
# with its 1 MB segments, names it; read as 16 MB segments it was not found)
end=$(sed -n 's/.*"restore_window":"[0-9A-F/]* \.\. \([0-9A-F/]*\)".*/\1/p' "$T/info.json")
t_is "$(pg_sql "select pg_walfile_name('${end:-0/0}')")" "$seg" \
	"pg info: the backup restores up to $end, the switch record in $seg" ||
	diag "$(cat "$T/info.json")"

# The second repository learns of the cluster from a base backup (the server waits
# for its own archiving into the first one).
bk2() { pg_as_server "$BUNKER" -q --repo "$T/bk/two" --key-file "$KEY" "$@"; }
t_rc 0 "a second repository" bk2 init
b2=$(bk2 --json pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint 2>"$T/b2.err")
t_is "$?" 0 "pg basebackup claims the cluster there"
id2=$(json_field "$b2" snapshot)
first=$(pitr_segment_of "$id2" start_lsn pg_sql bk2)
t_true "it warns that the repository lacks $first, its start segment in 1 MB segments" \
	grep -q "needs WAL file $first, which is not in this repository" "$T/b2.err" ||
	diag "$(cat "$T/b2.err")"
last=$(pitr_segment_of "$id2" stop_lsn pg_sql bk2)
pushed=0
for f in $(ls "$REPO/wal/main" | awk -v a="$first" -v z="$last" '$0 >= a && $0 <= z'); do
	bkp pg wal-fetch "$f" "$SRV/$f" && bk2 pg wal-push "$SRV/$f" && pushed=$((pushed + 1))
done
t_true "its WAL, $first to $last, pushed there too ($pushed files)" test "$pushed" -ge 1
bk2 pg info --json >"$T/info2.json"
t_true "there, pg info finds the backup restorable" grep -q '"restore_window":"[0-9A-F/]* \.\. ' "$T/info2.json" ||
	diag "$(cat "$T/info2.json")"

# The newest segment archived filled up rather than being switched: its last record
# goes on into the next segment, which is not archived, so the window ends at the
# record before (bunker offered the one that goes on, and PostgreSQL failed).
pg_sql "insert into t select g, repeat(md5(g::text), 8) from generate_series(100001, 110000) g" >/dev/null
cur=$(pg_sql "select pg_walfile_name(pg_current_wal_insert_lsn())")
hi=$((16#${cur:8:8})) lo=$((16#${cur:16:8} - 1)) # the segment before, 4096 to a 4 GiB log
[ "$lo" -lt 0 ] && hi=$((hi - 1)) lo=4095
filled=$(printf '%s%08X%08X' "${cur:0:8}" "$hi" "$lo")
t_true "the filled segment $filled is archived" pitr_wait_archived "$filled"
bkp pg info --json >"$T/info3.json"
fend=$(sed 's/"restore_window"/\n&/g' "$T/info3.json" | tail -n 1 |
	sed -n 's/^"restore_window":"[0-9A-F/]* \.\. \([0-9A-F/]*\)".*/\1/p')
t_is "$(pg_sql "select pg_walfile_name('${fend:-0/0}')")" "$filled" \
	"pg info: the window ends in $filled ($fend)" || diag "$(cat "$T/info3.json")"
# (with the server still up: its shutdown would archive the rest)
if t_rc 0 "pg restore to that end" bkp pg restore latest --target "$SRV/r-filled" --target-lsn "$fend"; then
	t_is "$(stat -c %a "$SRV/r-filled")" "$(stat -c %a "$PG_DATA")" \
		"... the data directory restored with the original's mode (group access)"
	if pitr_start "$SRV/r-filled" && pitr_wait_recovered 120; then
		t_is "$(rsql "select count(*) from t")" 20001 \
			"the restored server reaches it and promotes, without the insert not yet committed"
		t_is "$(rsql "show data_directory_mode")" 0750 "... with group access, as the original"
	else
		not_ok "the restored server reaches the window's end" "$(pitr_log_tail 20)"
	fi
	pitr_stop
fi
rm -rf "$SRV/r-filled"

# A time after the last transaction archived: PostgreSQL stops a time target at the
# first transaction that ended after it, and with none replays to the end and fails,
# even when the segment was archived after that time. (Autovacuum off: its commits
# would be later ones.)
pg_conf_set autovacuum off
pg_reload
sleep 1.1
mid=$(pitr_now)
sleep 1.1
pg_sql "insert into t values (-1, 'the last transaction')" >/dev/null
sleep 1.1
late=$(pitr_now)
seg=$(pitr_switch_wal)
t_true "its segment ($seg) is archived, after $late" pitr_wait_archived "$seg"
# idle_segments: two segments switched without a transaction, as archive_timeout
# switches an idle server's, and archived
idle_segments() {
	local a b
	a=$(pitr_switch_wal)
	b=$(pitr_switch_wal)
	t_true "two segments without a transaction ($a, $b) are archived" pitr_wait_archived "$b"
}
# refused_time DESC TIME WHAT PATTERN: pg restore latest to TIME exits 3, its
# message matches PATTERN (WHAT says what it names), and nothing is written
AFTER_LAST="the target time is at or after the end of the last transaction archived"
NONE_AFTER="the target time is after the last transaction archived"
refused_time() {
	t_rc 3 "$1" bkp pg restore latest --target "$SRV/r-refused" --target-time "$2"
	t_true "$3" grep -q "$4" "$ERR" || diag "$(cat "$ERR")"
	t_true "and nothing is written" test ! -e "$SRV/r-refused"
}
refused_time "a --target-time after the last transaction archived is refused" "$late" \
	"naming when that transaction ended" "$AFTER_LAST, which ended at .* (in $seg)"
# An idle server's newest segments hold no transaction (archive_timeout switches
# them): the last transaction is further back, and bunker must walk back to it
# (before, a time after it was refused only when the newest segment held one).
sleep 0.2
later=$(pitr_now)
sleep 0.2
idle_segments
refused_time "with them archived after it, a --target-time after the last transaction is still refused" \
	"$late" "naming when it ended, in $seg" "$AFTER_LAST, which ended at .* (in $seg)"
refused_time "so is a time after $seg was archived" "$later" \
	"naming that transaction too (the walk reads $seg, the first archived before it)" \
	"$AFTER_LAST, which ended at .* (in $seg)"
# pg info gives the same bound: the time window ends at that transaction's end.
bkp pg info --json >"$T/info4.json"
xend=$(json_field "$(cat "$T/info4.json")" last_transaction_end)
t_true "pg info: the last transaction ended at $xend, after $mid and before $later" \
	test "$(printf '%s\n%s\n%s\n' "$xend" "${mid:0:10}T${mid:11:8}Z" "${later:0:10}T${later:11:8}Z" | sort | sed -n 2p)" = "$xend" \
	-a -n "$xend" || diag "$(cat "$T/info4.json")"
# A time before that last transaction is reached through the idle segments.
if t_rc 0 "a --target-time before the last transaction, idle segments after it" \
	bkp pg restore latest --target "$SRV/r-mid" --target-time "$mid"; then
	if pitr_start "$SRV/r-mid" && pitr_wait_recovered 120; then
		t_is "$(rsql "select count(*) filter (where id = -1) || ' ' || count(*) filter (where id = 0) from t")" \
			"0 1" "the restored server stops before the last transaction"
	else
		not_ok "the restored server reaches that time" "$(pitr_log_tail 20)"
	fi
	pitr_stop
fi
rm -rf "$SRV/r-mid"

# A commit that a segment's end cuts (its record goes on into the next segment),
# then idle segments: the commit is the last transaction, though no segment holds
# it whole, so a time before it is reachable. (bunker took the commit before it,
# whole in that segment, for the last, and refused.) The DO block writes messages
# until its own commit record will start 16 bytes before a segment's end.
pg_sql "create table t2 (id int)" >/dev/null
pg_sql "insert into t2 values (1)" >/dev/null
sleep 1.1
mid2=$(pitr_now)
sleep 1.1
cut=$(pg_psql -c "
DO \$\$
DECLARE pos pg_lsn; rem numeric; k int; n int := 0;
BEGIN
  INSERT INTO t2 VALUES (2);
  LOOP
    pos := pg_current_wal_insert_lsn();
    rem := 1048576 - ((pos - '0/0'::pg_lsn) % 1048576);
    n := n + 1;
    EXIT WHEN rem = 16 OR n > 5000;
    IF rem < 68 THEN k := 1000;
    ELSIF rem > 250 THEN k := least(rem - 250, 6000);
    ELSE k := rem - 16 - 52;
    END IF;
    PERFORM pg_logical_emit_message(false, 'p', repeat('x', k));
  END LOOP;
  RAISE NOTICE 'bytes left %', rem;
END \$\$;" 2>&1 | sed -n 's/.*bytes left \([0-9]*\).*/\1/p')
t_is "$cut" 16 "the commit is placed 16 bytes before a segment's end"
idle_segments
if t_rc 0 "a --target-time before that commit is not refused" \
	bkp pg restore latest --target "$SRV/r-cut" --target-time "$mid2"; then
	if pitr_start "$SRV/r-cut" && pitr_wait_recovered 120; then
		t_is "$(rsql "select string_agg(id::text, ',') from t2")" 1 \
			"PostgreSQL reaches it: the restored server stops before that commit"
	else
		not_ok "the restored server reaches that time" "$(pitr_log_tail 20)"
	fi
	pitr_stop
fi
rm -rf "$SRV/r-cut"

# A base backup with no transaction after it, and idle segments: the walk back
# reaches the backup's start (or the first segment archived before the target)
# without one, and a time after the backup is refused.
t_rc 0 "a base backup of the idle server" \
	bkp pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint
sleep 0.2
idle=$(pitr_now)
sleep 0.2
idle1=$(pitr_switch_wal)
t_true "an idle segment after it ($idle1) is archived" pitr_wait_archived "$idle1"
refused_time "a time after it is refused" "$idle" "naming the WAL that holds none" \
	"$NONE_AFTER: the WAL from [0-9A-F]* to $idle1 holds none"
bkp pg info --json >"$T/info5.json"
t_true "pg info: no transaction after that backup (last_transaction_end \"\")" \
	sh -c "sed 's/,{\"id\"/\n/g' '$T/info5.json' | tail -n 1 | grep -q '\"last_transaction_end\":\"\"'" ||
	diag "$(cat "$T/info5.json")"
t_true "nor, for the first restorable backup, known (null: the walk back meets the commit cut)" \
	sh -c "sed 's/,{\"id\"/\n/g' '$T/info5.json' | grep '\"restore_window\":\"[0-9A-F/]* \.\. ' |
		head -n 1 | grep -q '\"last_transaction_end\":null'" ||
	diag "$(cat "$T/info5.json")"

# A large commit (3000 subtransactions, ~12 KB) that starts a few KB before a
# segment's end, then idle segments: its time is in the part the segment holds, so
# a time after it is refused (bunker said it did not know, and PostgreSQL failed).
pg_sql "create table t3 (id int)" >/dev/null
big=$(pg_psql -c "
DO \$\$
DECLARE pos pg_lsn; rem numeric; n int := 0;
BEGIN
  FOR i IN 1..3000 LOOP BEGIN INSERT INTO t3 VALUES (i); EXCEPTION WHEN others THEN NULL; END; END LOOP;
  LOOP
    pos := pg_current_wal_insert_lsn();
    rem := 1048576 - ((pos - '0/0'::pg_lsn) % 1048576);
    n := n + 1;
    EXIT WHEN rem < 3000 OR n > 5000;
    PERFORM pg_logical_emit_message(false, 'p', repeat('x', least(rem - 2500, 6000)::int));
  END LOOP;
  RAISE NOTICE 'bytes left %', rem;
END \$\$;" 2>&1 | sed -n 's/.*bytes left \([0-9]*\).*/\1/p')
t_true "the commit starts $big bytes before a segment's end" test "${big:-0}" -ge 100 -a "${big:-0}" -lt 3000
sleep 1.1
after_big=$(pitr_now)
sleep 0.2
idle_segments
refused_time "a time after that cut commit is refused" "$after_big" "naming when it ended" \
	"$AFTER_LAST, which ended at "
# Past 256 idle segments (an idle weekend with archive_timeout): the walk reads what
# wal-push recorded of each. Before, it fetched each segment, gave up after 256 and
# accepted the time, and PostgreSQL failed. Not in the quick run: 258 more segments.
if [ "$QUICK" = 0 ]; then
	for ((i = 0; i < 258; i++)); do idle=$(pitr_switch_wal); done
	t_true "258 more segments without a transaction (to $idle) are archived" \
		pitr_wait_archived "$idle" 120
	refused_time "past 256 of them, a time after that commit is still refused" "$after_big" \
		"naming when it ended" "$AFTER_LAST, which ended at "
fi
pg_stop

# restore_command carries the key file's path, in which PostgreSQL would replace %p
pg_as_server cp "$KEY" "$T/bk/key%p"
if t_rc 0 "pg restore latest, with a key file named key%p" pg_as_server "$BUNKER" -q \
	--repo "$REPO" --key-file "$T/bk/key%p" pg restore latest --target "$SRV/r"; then
	if pitr_start "$SRV/r" && pitr_wait_recovered 120; then
		t_is "$(rsql "select count(*) || ' ' || max(v) filter (where id = 0) from t")" \
			"30002 after the backup" "the restored server has every row, the new ones too"
	else
		not_ok "the restored server recovers" "$(pitr_log_tail 20)"
	fi
	pitr_stop
fi
done_testing
