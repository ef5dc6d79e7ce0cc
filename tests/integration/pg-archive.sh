#!/bin/bash
# pg-archive.sh: `bunker pg wal-push` as a real PostgreSQL 15 server's archive_command
# under pgbench load (with checkpoints and forced segment switches), then a clean shutdown. Every file
# the server marked archived (archive_status/*.done) comes back byte-exact through
# `bunker pg wal-fetch` (compared with the copy the server keeps: wal_keep_size is
# large), the archive holds exactly those files, there is no gap between the first and
# the last archived segment, the archiver never failed, and `bunker check` is clean.
# A base backup's .backup history file is among them.
# A segment pushed under a second cluster name is warned of; the server's pushes are not.
# With the cluster's wal/ directory gone while a base backup is here, wal-fetch
# exits 128 (not 3, which would end recovery early) and pg restore says so.
# BUNKER_TEST_QUICK=1 shortens the load.
. "$SRCDIR/tests/integration/lib-pitr.sh"
pitr_init pg-archive

scale=5 secs=15 min_segs=8
[ "$QUICK" = 1 ] && scale=2 secs=6 min_segs=4

pg_start "$T/pg" || { echo "Bail out! PostgreSQL did not start"; exit 1; }
pitr_archiving_on || { echo "Bail out! restart with archiving failed"; exit 1; }

t_true "pgbench -i -s $scale" "$PG_BIN/pgbench" -i -s "$scale" -q postgres
"$PG_BIN/pgbench" -T "$secs" -c 4 -j 2 -n postgres >"$T/pgbench.log" 2>&1 &
bench=$!
at_exit "kill $bench"
switches=0
while kill -0 "$bench" 2>/dev/null; do
	sleep 3
	# a checkpoint first: the full-page images after it make the WAL grow faster
	pg_sql checkpoint >/dev/null
	pitr_switch_wal >/dev/null && switches=$((switches + 1))
done
wait "$bench"
t_is "$?" 0 "pgbench -T $secs -c 4 with $switches forced switches" || diag "$(tail -n 5 "$T/pgbench.log")"
diag "$(grep -E '^(tps|number of transactions actually)' "$T/pgbench.log")"
# a base backup: its backup history file (.backup) is archived too
t_rc 0 "a base backup after the load" bkp pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint
last=$(pitr_switch_wal)
t_true "the last segment ($last) is archived" pitr_wait_archived "$last" 120
stats=$(pg_sql "select archived_count, failed_count, last_archived_wal from pg_stat_archiver")
pg_stop
t_true "the server stopped cleanly" test ! -e "$PG_DATA/postmaster.pid"
IFS='|' read -r archived_count failed_count last_archived <<<"$stats"
t_is "$failed_count" 0 "archive_command never failed (pg_stat_archiver.failed_count)"
ready=$(ls "$PG_DATA/pg_wal/archive_status" | grep '\.ready$')
t_is "$ready" "" "nothing is left waiting for archiving after the shutdown"

# What the server archived.
ls "$PG_DATA/pg_wal/archive_status" | sed -n 's/\.done$//p' | LC_ALL=C sort >"$T/done.list"
segs=$(grep -cE '^[0-9A-F]{24}$' "$T/done.list")
t_is "$(wc -l <"$T/done.list")" "$archived_count" \
	"every file counted by pg_stat_archiver still has its .done ($archived_count)"
t_true "at least $min_segs segments were archived ($segs)" test "$segs" -ge "$min_segs"
first=$(grep -E '^[0-9A-F]{24}$' "$T/done.list" | head -n 1)
lastseg=$(grep -E '^[0-9A-F]{24}$' "$T/done.list" | tail -n 1)
t_is "$lastseg" "$last_archived" "the newest .done segment is pg_stat_archiver's last_archived_wal"

# The archive holds exactly those files (one record per archived file).
ls "$REPO/wal/main" | LC_ALL=C sort >"$T/repo.list"
t_is "$(cat "$T/repo.list")" "$(cat "$T/done.list")" "the archive's files are the server's archived files"

# next_seg NAME: the segment after NAME (16 MiB segments: 256 per log file).
next_seg() {
	local tli=${1:0:8} log=$((16#${1:8:8})) seg=$((16#${1:16:8}))
	seg=$((seg + 1))
	if [ "$seg" = 256 ]; then
		seg=0
		log=$((log + 1))
	fi
	printf '%s%08X%08X' "$tli" "$log" "$seg"
}

# Every segment from the first to the last fetches, byte-exact.
mkdir "$SRV/fetch"
chown postgres: "$SRV/fetch"
name=$first n=0 missing= differ= nocopy=0
while :; do
	n=$((n + 1))
	if ! bkp pg wal-fetch "$name" "$SRV/fetch/$name" 2>"$T/fetch.err"; then
		missing+="$name($(head -c 200 "$T/fetch.err")) "
	elif [ -f "$PG_DATA/pg_wal/$name" ]; then
		cmp -s "$SRV/fetch/$name" "$PG_DATA/pg_wal/$name" || differ+="$name "
	else
		nocopy=$((nocopy + 1))
	fi
	rm -f "$SRV/fetch/$name"
	[ "$name" = "$lastseg" ] && break
	[ "$n" -gt 100000 ] && break
	name=$(next_seg "$name")
done
t_is "$missing" "" "no gap: all $n segments from $first to $lastseg fetch"
t_is "$differ" "" "every fetched segment equals the server's copy"
t_is "$nocopy" 0 "the server kept every segment to compare with"
t_is "$n" "$segs" "the server archived each segment of that range once"

# The other archived files: the base backup's .backup history file.
t_true "the base backup's history file was archived" grep -q '\.backup$' "$T/done.list"
differ=
for name in $(grep -vE '^[0-9A-F]{24}$' "$T/done.list"); do
	if ! bkp pg wal-fetch "$name" "$SRV/fetch/$name" ||
		! cmp -s "$SRV/fetch/$name" "$PG_DATA/pg_wal/$name"; then
		differ+="$name "
	fi
done
t_is "$differ" "" "the other archived files fetch byte-exact"

t_rc 0 "bunker check after the archiving" bkp check
# wal-push walked every segment, checking each record's CRC: none of a busy
# server's stops short (pg-damage.sh shows one that does)
t_rc 0 "pg info --json" bkp pg info --json
t_true "... finds no damaged segment among the $n" grep -q '"timeline":1,[^}]*"damaged":0[,}]' \
	"$OUT" || diag "$(head -c 2000 "$OUT")"

# PostgreSQL runs archive_command with umask 077: what it created (wal/, clusters/,
# data/xx/) must stay open to a group sharing the repository, as the files are.
t_is "$(find "$REPO" -type d ! -perm -0770 -printf '%m %P\n')" "" "every directory is group-writable"
t_is "$(find "$REPO" -type f ! -perm -0660 -printf '%m %P\n')" "" "every file is group-writable"

# A segment of this system pushed under a second cluster name (a wrong --cluster
# splits the archive) is stored, with a warning naming 'main'; only the push that
# records the name looks: the next segment under it, and the server's own pushes
# as 'main' (its log), say nothing.
sysid=$(pg_sysid)
t_rc 0 "wal-push --cluster other of a segment archived as 'main'" \
	bkp pg wal-push --cluster other "$PG_DATA/pg_wal/$first"
t_is "$(cat "$ERR")" "bunker: warning: system $sysid is also archived here as cluster 'main' (--cluster main?)" \
	"... warns that the system is archived here as cluster 'main'"
t_rc 0 "wal-push --cluster other of the next segment" \
	bkp pg wal-push --cluster other "$PG_DATA/pg_wal/$(next_seg "$first")"
t_is "$(cat "$ERR")" "" "... says nothing: the name is recorded"
t_is "$(grep -c 'also archived here' "$PG_LOG")" 0 "the server's pushes as 'main' warned of nothing"
t_rc 0 "a repeated push as 'main'" bkp pg wal-push "$PG_DATA/pg_wal/$first"
t_is "$(cat "$ERR")" "" "... says nothing"

# The repository with wal/main gone (a partial copy, a bind mount not mounted): pg
# restore names it (it said "segment ... is not archived yet", found by a helper's
# exploration); wal-fetch exits 128 then (pg-contracts.sh)
mv "$REPO/wal/main" "$REPO/wal/main.aside"
for f in "$first" 00000002.history; do
	t_rc 128 "wal-fetch of $f with wal/main missing, a base backup here: exit 128" \
		bkp pg wal-fetch "$f" "$SRV/fetch/RECOVERYXLOG"
	t_true "... naming it" grep -qx \
		"bunker: wal-fetch $f: cluster 'main' has no WAL in this repository, though it has base backups (wal/main is missing or empty)" \
		"$ERR" || diag "$(cat "$ERR")"
done
pg_as_server mkdir "$REPO/wal/main"
t_rc 128 "... empty: exit 128 too" bkp pg wal-fetch "$first" "$SRV/fetch/RECOVERYXLOG"
rmdir "$REPO/wal/main"
t_rc 3 "pg restore with wal/main missing exits 3" bkp pg restore latest --target "$SRV/r-nowal"
t_true "... naming wal/main" grep -qx \
	"bunker: pg restore: WAL chain incomplete: cluster 'main' has no WAL in this repository (wal/main is missing or empty; the backup needs [0-9A-F]\{24\} on)" \
	"$ERR" || diag "$(cat "$ERR")"
t_true "... writing nothing" test ! -e "$SRV/r-nowal"
mv "$REPO/wal/main.aside" "$REPO/wal/main"
t_rc 0 "... back: wal-fetch of $first exits 0" bkp pg wal-fetch "$first" "$SRV/fetch/RECOVERYXLOG"
t_cmp "$PG_DATA/pg_wal/$first" "$SRV/fetch/RECOVERYXLOG" "... byte-exact"

done_testing
