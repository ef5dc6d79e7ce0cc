#!/bin/bash
# pg-tablespace.sh: a cluster with a tablespace on another file system (tmpfs under
# /dev/shm; the data directory is on disk; its path has a space and a backslash),
# backed up by `bunker pg basebackup` and
# restored by `bunker pg restore`: the tablespace's files go straight to their
# tablespace_map location (a rename across file systems fails), the restored server
# reads the table stored there, and a location that is not empty is refused before
# anything is written; an interrupted restore leaves a location it had not begun alone;
# one killed in a location leaves its marker there, which the next restore names;
# a target and a location there already (0755) are made 0700.
# --tablespace-mapping locations in the data directory are refused before writing,
# spelled with "..", "." or through a symbolic link too; as root, a restore that
# fails after writing gives a target that was there its owner and mode back.
# A --target whose parents cannot be made fails before writing; a repository path
# with a quote, a space, a backslash and a '%' gives a postgresql.auto.conf PostgreSQL
# reads, whose restore_command fetches WAL, also after ALTER SYSTEM; one with a line
# break is refused. On a terminal, a backup whose files outgrow the server's estimate
# shows sane progress. A backup during which tablespaces are dropped restores, and
# the restored server recovers.
. "$SRCDIR/tests/integration/lib-pitr.sh"
pitr_init pg-tablespace

SHM=$(mktemp -d /dev/shm/bunker-it-ts.XXXXXX) || { echo "Bail out! no /dev/shm"; exit 1; }
at_exit "rm -rf '$SHM'"
chown postgres: "$SHM"
chmod 711 "$SHM"
# a space and a backslash in the path: tablespace_map escapes the backslash
LOC="$SHM/ts dir\\x"
pg_as_server mkdir "$LOC"
t_true "the tablespace is on another file system than the data directory" \
	test "$(stat -c %d "$SHM")" != "$(stat -c %d "$T")"

pg_start "$T/pg" || { echo "Bail out! PostgreSQL did not start"; exit 1; }
pitr_archiving_on || { echo "Bail out! restart with archiving failed"; exit 1; }
pg_sql "create tablespace ts location '$LOC'" >/dev/null
TS_OID=$(pg_sql "select oid from pg_tablespace where spcname = 'ts'")
pg_sql "create table t (id int primary key, v text) tablespace ts" >/dev/null
pg_sql "insert into t select g, md5(g::text) from generate_series(1, 10000) g" >/dev/null
want=$(pg_sql "select count(*) || ':' || sum(id) from t")

# Progress on a terminal (script(1) gives it one) when the files outgrow the server's
# estimate: 40 MB written to the data directory while the tablespace's archive
# streams (--max-rate 8M: 24 MB there take 3 s) come after the server sized
# base.tar. Each line's total is then what has come, and no ETA is beyond reason
# (total - done wrapped: "51.4 / 49.7 MB  10.0 MB/s  ETA 1840804295586s", found
# by review). Into a repository of its own; the tables are dropped after.
if command -v script >/dev/null; then
	pg_psql >/dev/null <<EOF
create table pts (b text) tablespace ts;
alter table pts alter column b set storage external;
insert into pts select repeat('t', 1000000) from generate_series(1, 24);
create table pgrow (b text);
alter table pgrow alter column b set storage external;
checkpoint;
EOF
	pg_as_server "$BUNKER" -q --repo "$T/bk/progress" --key-file "$KEY" init >/dev/null
	pg_as_server script -qfec "'$BUNKER' --repo '$T/bk/progress' --key-file '$KEY' pg basebackup \
		--dbname '$(pitr_conninfo)' --fast-checkpoint --max-rate 8M --archive-timeout 0" \
		/dev/null >"$T/tty.out" 2>&1 &
	tty_pid=$!
	sleep 0.5
	pg_psql >/dev/null <<EOF
insert into pgrow select repeat('g', 1000000) from generate_series(1, 40);
EOF
	wait "$tty_pid"
	t_is "$?" 0 "pg basebackup on a terminal, the files growing past the estimate" ||
		diag "$(tr '\r' '\n' <"$T/tty.out" | tail -n 5)"
	# "DONE / TOTAL MB  RATE MB/s  ETA Ns" lines, after carriage returns
	tr '\r' '\n' <"$T/tty.out" | grep -E '^[0-9.]+ / [0-9.]+ MB ' >"$T/tty.lines"
	t_true "the backup outgrew the estimate its first line shows" awk '
		NR == 1 { first = $3 } $1 + 0 > first + 10 { grew = 1 } END { exit !grew }' "$T/tty.lines" ||
		diag "$(cat "$T/tty.lines")"
	t_true "... and no line shows more done than its total, or an ETA past a day" awk '
		$1 + 0 > $3 + 0 || substr($NF, 1, length($NF) - 1) + 0 > 86400 { bad = 1; print }
		END { exit bad }' "$T/tty.lines" || diag "$(cat "$T/tty.lines")"
	# 8M is 8192 kB/s, 8.4 MB/s: the rate since the first line, whose data came
	# before it (found by review: the second line said 16.8 MB/s, counting the
	# first line's 8.4 MB in 1 s); half again to spare for a report read late
	t_true "... or a rate half again above --max-rate 8M's 8.4 MB/s" awk '
		$6 == "MB/s" && $5 + 0 > 12.6 { bad = 1; print } END { exit bad }' "$T/tty.lines" ||
		diag "$(cat "$T/tty.lines")"
	pg_sql "drop table pts, pgrow" >/dev/null
	pg_sql "checkpoint" >/dev/null
	rm -rf "$T/bk/progress"
else
	skip "no script(1) to give the backup a terminal"
fi

# Two tablespaces dropped while a backup streams the first of them: the server,
# which listed both at the start, sends the second as an archive without a single
# entry. The backup is saved, and its restore leaves that location empty, as
# pg_basebackup does; the restored server replays the drops (found by an
# adversarial test: the restore failed, exit 3, "no such path in snapshot", so a
# backup saved with exit 0 could never be restored). The server sends at 4 MB/s, so
# the drops end long before the first 16 MB do. (Not by stopping bunker: DROP
# TABLESPACE waits for every process to close its files, and a walsender blocked on
# a full socket never did, so the drop and the test waited for ever.)
pg_as_server mkdir "$SHM/tsa" "$SHM/tsb"
pg_psql >/dev/null <<EOF
create tablespace tsa location '$SHM/tsa';
create tablespace tsb location '$SHM/tsb';
create table ta (b text) tablespace tsa;
create table tb (b text) tablespace tsb;
alter table ta alter column b set storage external;
alter table tb alter column b set storage external;
insert into ta select repeat('a', 1000000) from generate_series(1, 16);
insert into tb select repeat('b', 1000000) from generate_series(1, 16);
EOF
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
"${as_pg[@]}" "$BUNKER" -q --repo "$REPO" --key-file "$KEY" --json pg basebackup \
	--dbname "$(pitr_conninfo)" --fast-checkpoint --max-rate 4M >"$T/drop.out" 2>"$T/drop.err" &
drop_pid=$!
at_exit "kill $drop_pid 2>/dev/null"
for _ in $(seq 300); do
	[ "$(pg_sql "select backup_streamed > 0 from pg_stat_progress_basebackup")" = t ] && break
	sleep 0.02
done
pg_psql >/dev/null <<EOF
drop table ta, tb;
drop tablespace tsa;
drop tablespace tsb;
EOF
wait "$drop_pid"
t_is "$?" 0 "pg basebackup during which two tablespaces are dropped" || diag "$(cat "$T/drop.err")"
drop_id=$(snap_id_of "$T/drop.out")
if t_rc 0 "... restores" bkp pg restore "$drop_id" --target "$SRV/r-drop" \
	--tablespace-mapping "$LOC=$SHM/r-drop-ts"; then
	t_is "$(ls -A "$SHM/tsa" "$SHM/tsb" | grep -c PG_)" 1 \
		"... the tablespace sent in part at its location, the other's left empty"
	if pitr_start "$SRV/r-drop" && pitr_wait_recovered 120; then
		t_is "$(rsql "select count(*) from pg_tablespace where spcname in ('tsa', 'tsb')")" 0 \
			"... and the server restored there recovers, without the two"
	else
		not_ok "... and the server restored there recovers" "$(pitr_log_tail 20)"
	fi
	pitr_stop
fi
rm -rf "$SRV/r-drop" "$SHM/r-drop-ts" "$SHM/tsa" "$SHM/tsb"

t_rc 0 "pg basebackup of a cluster with a tablespace" \
	bkp pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint
seg=$(pitr_switch_wal)
t_true "its WAL is archived ($seg)" pitr_wait_archived "$seg"
pg_stop
mv "$LOC" "$SHM/ts.orig"

# a location that is not empty: refused, nothing written
pg_as_server mkdir "$LOC"
pg_as_server touch "$LOC/stray"
t_fails "pg restore with the tablespace's location not empty is refused" \
	bkp pg restore latest --target "$SRV/r"
t_true "naming it" grep -qF ": $LOC is not empty" "$ERR" || diag "$(cat "$ERR")"
t_true "and nothing is written" test ! -e "$SRV/r" -a "$(ls "$LOC")" = stray
rm -rf "$LOC"

# Interrupted while it writes the data directory, with a file put in the tablespace's
# location after the check (by another restore, say): the data directory is emptied
# again, and the location, which this restore had not begun, is left as it is (every
# location was emptied: found by review).
# A restore this small may end before it is stopped: tried up to 8 times (a try
# whose restore ended first was skipped once, found by review).
interrupted=0
for try in 1 2 3 4 5 6 7 8; do
	rm -rf "$LOC" "$SRV/r-int"
	pg_as_server mkdir "$LOC"
	pitr_restore_writing "$SRV/r-int"
	if pitr_restore_pause; then
		pg_as_server touch "$LOC/precious"
		kill -TERM "$RESTORE_KID" 2>/dev/null
		pitr_restore_resume
		wait "$RESTORE_PID" || { interrupted=$try; break; }
	else
		pitr_restore_resume
		wait "$RESTORE_PID"
	fi
done
diag "interrupted at try $interrupted"
if [ "$interrupted" != 0 ]; then
	t_true "an interrupted restore says what it removed" \
		grep -q "(what it wrote is removed)" "$T/int.err" || diag "$(cat "$T/int.err")"
	t_true "it removes the data directory it made" test ! -e "$SRV/r-int"
	t_is "$(ls -A "$LOC")" precious "and leaves the location it had not begun as it was"
else
	not_ok "an interrupted restore (8 tries ended before the signal)"
fi
rm -rf "$LOC" "$SRV/r-int"

# Killed (SIGKILL, by io-fault.c) as it creates the tablespace's first file: the
# next restore names the location a killed restore wrote, not only "not empty"
# (the marker was in the data directory alone), and both markers go once a restore
# ends (the location kept its own: found by checking).
pitr_restore_faulted kill "$LOC/PG_" "$SRV/r-kill" 2>/dev/null
t_is "$?" 137 "pg restore killed as it writes the tablespace"
rm -rf "$SRV/r-kill"
t_rc 1 "the next restore, the target emptied, fails" bkp pg restore latest --target "$SRV/r-kill"
t_is "$(cat "$ERR")" "bunker: pg restore: tablespace $TS_OID: $LOC holds what a restore that was killed wrote (.bunker-restore-incomplete is there): empty it, then run again" \
	"... in one line saying a restore was killed in the location"
rm -rf "$LOC"
t_rc 0 "... and once that is emptied, restores" bkp pg restore latest --target "$SRV/r-kill"
t_is "$(ls -A "$LOC" "$SRV/r-kill" | grep -c bunker-restore)" 0 "... leaving no marker"
rm -rf "$LOC" "$SRV/r-kill"

# server_reads_table DIR LOCATION: a server started on the restored DIR recovers and
# reads the table in the tablespace, which it has at LOCATION.
server_reads_table() {
	if pitr_start "$1" && pitr_wait_recovered 120; then
		t_is "$(rsql "select count(*) || ':' || sum(id) from t")" "$want" \
			"the server restored in $1 reads the table in the tablespace"
		t_is "$(rsql "select pg_tablespace_location(oid) from pg_tablespace where spcname = 'ts'")" \
			"$2" "... at $2"
	else
		not_ok "the server restored in $1 recovers" "$(pitr_log_tail 20)"
	fi
	pitr_stop
}

# the target and the location there already, empty, 0755: both made 0700, as the
# server wants its data directory
pg_as_server mkdir -m 0755 "$SRV/r" "$LOC"
if t_rc 0 "pg restore latest" bkp pg restore latest --target "$SRV/r"; then
	t_true "the tablespace's files are at its location" \
		sh -c "ls -d '$LOC'/PG_* >/dev/null"
	t_true "and not in the data directory" test ! -e "$SRV/r/.bunker-tablespaces"
	t_is "$(stat -c %a "$SRV/r")" 700 "the data directory has mode 0700"
	t_is "$(stat -c %a "$LOC")" 700 "the location has mode 0700"
	server_reads_table "$SRV/r" "$LOC"
fi

# Beside that restore, whose tablespace is at $LOC: a second one is refused (the
# location is in use) unless --tablespace-mapping puts the tablespace elsewhere;
# the server restored there reads the table at the new location, which the
# restored tablespace_map names (escaped as PostgreSQL writes it).
t_fails "a second restore beside it is refused: the location is in use" \
	bkp pg restore latest --target "$SRV/r-map"
# refused_map RC DESC MAPPING TEXT: pg restore into $SRV/r-map with that mapping
# exits RC, its error holds TEXT, and it wrote nothing (r-map, if there, stays empty)
refused_map() {
	local had=0
	[ -e "$SRV/r-map" ] && had=1
	t_rc "$1" "$2" bkp pg restore latest --target "$SRV/r-map" --tablespace-mapping "$3"
	t_true "... naming it" grep -qF -- "$4" "$ERR" || diag "$(cat "$ERR")"
	if [ "$had" = 1 ]; then
		t_is "$(ls -A "$SRV/r-map")" "" "... before writing anything"
	else
		t_true "... before writing anything" test ! -e "$SRV/r-map"
	fi
}
refused_map 2 "a mapping of a location the backup has no tablespace at is refused" \
	"/nowhere=$SHM/moved" "the backup has no tablespace at /nowhere (it has $LOC)"
t_rc 2 "a mapping that is not OLD=NEW is refused" \
	bkp pg restore latest --target "$SRV/r-map" --tablespace-mapping "$LOC"
# before the archive is read: as a usage error, whatever else the restore would
# meet (it was reported only once the chain was checked: exit 3 here, a cluster
# with no WAL; found by a walk through the README)
t_rc 2 "... before the archive is read (a cluster of none: exit 2, not 3)" \
	bkp --cluster nowal pg restore latest --target "$SRV/r-map" --tablespace-mapping "$LOC"
t_true "... naming it" grep -qFx "bunker: pg restore: --tablespace-mapping '$LOC' is not OLD=NEW, two absolute paths" "$ERR" ||
	diag "$(cat "$ERR")"
refused_map 2 "a NEW inside the data directory is refused (the server would remove it)" \
	"$LOC=$SRV/r-map/pg_tblspc/x" "lies in the data directory, $SRV/r-map (--tablespace-mapping)"
# Compared as the kernel resolves them, not as written (found by review: the ".."
# spelling restored the tablespace in the data directory, exit 0; the "." spelling
# and a symbolic link failed only after writing, exit 1). The messages give the
# spelling and the resolved path.
refused_map 2 "a NEW in the data directory spelled with .. is refused" \
	"$LOC=$SRV/../${SRV##*/}/r-map/ts" \
	"would be restored to $SRV/../${SRV##*/}/r-map/ts (resolved: $(realpath -m "$SRV/r-map/ts"))"
rm -rf "$SRV/r-map"
refused_map 2 "a NEW that is the data directory spelled with . is refused" \
	"$LOC=$SRV/./r-map" "would be restored to $SRV/./r-map (resolved: "
rm -rf "$SRV/r-map"
# the target there already, empty, and a symbolic link to it
pg_as_server mkdir "$SRV/r-map"
ln -s "$SRV/r-map" "$SHM/to-target"
refused_map 2 "a NEW that is a symbolic link to the data directory is refused" \
	"$LOC=$SHM/to-target" "would be restored to $SHM/to-target (resolved: $(realpath "$SRV/r-map")), which is"
rm -rf "$SRV/r-map"
# the target not there yet: the link dangles, and a NEW through it would be in the
# data directory once it is written
refused_map 1 "a NEW through a dangling symbolic link is refused" \
	"$LOC=$SHM/to-target/ts" "$SHM/to-target/ts: $SHM/to-target is a dangling symbolic link"
rm -rf "$SRV/r-map" "$SHM/to-target"
# run as root, a NEW under a directory the server's user cannot get through: the
# server could not reach the tablespace (found by trying, for a data directory)
if [ "$(id -u)" = 0 ]; then
	mkdir -m 0700 "$T/rootts"
	t_rc 2 "as root, a NEW under a directory the server's user cannot get through is refused" \
		"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg restore latest --target "$SRV/r-map" \
		--tablespace-mapping "$LOC=$T/rootts/ts"
	t_true "... naming it" grep -qF "who cannot get through $T/rootts to $T/rootts/ts:" "$ERR" ||
		diag "$(cat "$ERR")"
	t_true "... before writing anything" test ! -e "$SRV/r-map"
	rm -rf "$T/rootts"
	# A restore as root that fails after writing, into a target that was there
	# (root's, 0755, empty): emptied, it gets its owner and mode back (it was left
	# the server's, 0700: found by review). The tablespace's NEW cannot be made.
	mkdir -m 0755 "$SRV/r-pre"
	t_fails "as root, a restore into an existing empty target that fails while writing" \
		"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg restore latest --target "$SRV/r-pre" \
		--tablespace-mapping "$LOC=/proc/1/no/ts"
	t_true "... says what it wrote is removed" grep -qF "(what it wrote is removed)" "$ERR" ||
		diag "$(cat "$ERR")"
	t_is "$(ls -A "$SRV/r-pre")" "" "... empties the target"
	t_is "$(stat -c '%U %a' "$SRV/r-pre")" "root 755" "... and gives it back its owner and mode"
	rm -rf "$SRV/r-pre"
else
	ok "# SKIP restores as root: the tests do not run as root"
fi
MOVED="$SHM/moved \\ ts"
# (OLD with a trailing slash: compared without it)
if t_rc 0 "pg restore --tablespace-mapping to $MOVED" bkp pg restore latest --target "$SRV/r-map" \
	--tablespace-mapping "$LOC/=$MOVED"; then
	t_true "the tablespace's files are at the new location" sh -c "ls -d '$MOVED'/PG_* >/dev/null"
	oid=$(ls "$SRV/r/pg_tblspc") # (the first restore's server made its link)
	t_is "$(cat "$SRV/r-map/tablespace_map")" "$oid ${MOVED//\\/\\\\}" \
		"and the restored tablespace_map names it, its backslash escaped"
	server_reads_table "$SRV/r-map" "$MOVED"
fi
rm -rf "$SRV/r-map" "$MOVED"
rm -rf "$SRV/r" "$LOC"

# Another restore that marks the target, or a location, after this one checked it
# empty (io-fault.c's precreate mode makes the marker just before this restore
# does): this one writes nothing there and takes nothing back from there, and says
# so (found by review: the marker was made whether or not it was there, so two
# restores begun together wrote into one directory, and the take-back of one that
# failed would empty the other's).
raced_restore() { # DESC PATH: the restore into $SRV/r-race, the marker made first at PATH
	rm -rf "$SRV/r-race" "$SHM/r-race-ts"
	t_rc 1 "$1" pg_as_server env LD_PRELOAD="$IO_FAULT_LIB" IO_FAULT=precreate \
		IO_FAULT_PATH="$2/.bunker-restore-incomplete" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg restore latest --target "$SRV/r-race" \
		--tablespace-mapping "$LOC=$SHM/r-race-ts"
	t_true "... saying another restore began there" \
		grep -qF "$2: another restore began writing there meanwhile" "$ERR" || diag "$(cat "$ERR")"
	t_is "$(ls -A "$2")" .bunker-restore-incomplete "... and leaving that one's marker alone there"
}
raced_restore "a target another restore marks meanwhile: refused" "$SRV/r-race"
raced_restore "a location another restore marks meanwhile: refused" "$SHM/r-race-ts"
t_is "$(ls -A "$SRV/r-race")" "" "... and the data directory, written, is emptied"
rm -rf "$SRV/r-race" "$SHM/r-race-ts"

# Everything a restore changes is durable before it reports success, in the data
# directory and in a location on another file system: io-fault.c's unsynced mode
# names a chown, chmod or removal that no sync followed (found by review: give_all's
# chowns, a location's chmod and the markers' removal came after the last sync, and
# a power cut just after the restore could give back a data directory of root's,
# which the server refuses, or the marker of a killed restore).
durable_restore() { # DESC CMD...: the restore into $SRV/r-dur, its tablespace at $SHM/r-dur-ts
	rm -rf "$SRV/r-dur" "$SHM/r-dur-ts"
	t_rc 0 "$1" "${@:2}" env LD_PRELOAD="$IO_FAULT_LIB" IO_FAULT=unsynced IO_FAULT_PATH=/r-dur \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg restore latest --target "$SRV/r-dur" \
		--tablespace-mapping "$LOC=$SHM/r-dur-ts"
	t_is "$(grep "^io-fault" "$ERR")" "" "... and everything it changed is durable"
	rm -rf "$SRV/r-dur" "$SHM/r-dur-ts"
}
durable_restore "pg restore as the server's user" pg_as_server
if [ "$(id -u)" = 0 ]; then
	durable_restore "pg restore as root"
	# Started with SIGCHLD ignored (exec keeps it), as root: the child that checks
	# what the server's user can reach is still waited for (it failed, "waitpid: No
	# child processes")
	t_rc 0 "pg restore as root, started with SIGCHLD ignored" \
		perl -e '$SIG{CHLD} = "IGNORE"; exec @ARGV or die' \
		"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg restore latest --target "$SRV/r-chld" \
		--tablespace-mapping "$LOC=$SHM/r-chld-ts" || diag "$(cat "$ERR")"
	rm -rf "$SRV/r-chld" "$SHM/r-chld-ts"
else
	ok "# SKIP restores as root: the tests do not run as root"
fi

# A --target whose parents cannot be made fails before anything is written, saying
# so (it said "what it wrote is removed": found by review)
t_fails "pg restore --target under /proc/1 fails" bkp pg restore latest --target /proc/1/no/data
t_true "naming --target, with nothing to take back" \
	grep -q "^bunker: pg restore: --target /proc/1/no/data: mkdir /proc/1/no: No such file or directory$" "$ERR" ||
	diag "$(cat "$ERR")"

# A repository path with a quote, a space, a backslash and a '%' (the repository
# moved there): the restore_command PostgreSQL reads back from postgresql.auto.conf
# fetches WAL, and still does once the restored server's ALTER SYSTEM has written
# that file again. One with a line break is refused before anything is written:
# escaped, PostgreSQL read it, but ALTER SYSTEM wrote it back raw and the server
# could not start again (found by review; a raw one had made the file unreadable).
odd="$SRV/odd it's \\ 100% repo"
mv "$REPO" "$odd"
# restore_command_of DIR: restore_command as PostgreSQL reads it from DIR
restore_command_of() { pg_as_server "$PG_BIN/postgres" -D "$1" -C restore_command 2>"$T/odd.err"; }
if t_rc 0 "pg restore with such a --repo" pg_as_server "$BUNKER" -q --repo "$odd" \
	--key-file "$KEY" pg restore latest --target "$SRV/r-odd"; then
	cmd=$(restore_command_of "$SRV/r-odd")
	t_true "PostgreSQL reads its restore_command back, with that path" \
		grep -qF -- "--repo '$SRV/odd it'\\''s \\ 100%% repo'" <<<"$cmd" || diag "$cmd $(cat "$T/odd.err")"
	run=${cmd//%f/$seg}
	run=${run//%p/$SRV/odd-fetched}
	run=${run//%%/%}
	t_rc 0 "which fetches $seg" pg_as_server sh -c "$run"
	if pitr_start "$SRV/r-odd" && pitr_wait_recovered 120; then
		rsql "alter system set work_mem = '5MB'" >/dev/null
		pitr_stop
		t_is "$(restore_command_of "$SRV/r-odd")" "$cmd" \
			"... and the same once the server's ALTER SYSTEM wrote postgresql.auto.conf again"
	else
		not_ok "the server restored with that restore_command recovers" "$(pitr_log_tail 20)"
	fi
	mv "$odd" "$REPO"
	bkp pg wal-fetch "$seg" "$SRV/odd-want"
	t_cmp "$SRV/odd-fetched" "$SRV/odd-want" "... byte-exact"
else
	mv "$odd" "$REPO"
fi
rm -rf "$SRV/r-odd" "$LOC"
odd="$SRV/odd
repo"
mv "$REPO" "$odd"
t_rc 2 "pg restore with a --repo whose path has a line break is refused" pg_as_server \
	"$BUNKER" -q --repo "$odd" --key-file "$KEY" pg restore latest --target "$SRV/r-nl"
t_true "... saying why" grep -q "restore_command would hold a line break" "$ERR" ||
	diag "$(cat "$ERR")"
t_true "... before writing anything" test ! -e "$SRV/r-nl"
mv "$odd" "$REPO"
done_testing
