# tests/integration/lib-pitr.sh: helpers for the PostgreSQL tests (pg-*.sh): a
# repository the server's OS user can use, WAL archiving into it, and servers
# started on restored data directories.
#
# Source it from bash (it sources lib.sh and lib-pg.sh):
#     . "$SRCDIR/tests/integration/lib-pitr.sh"
#
#   pitr_init NAME         it_init NAME, then a repository at $REPO with a key file
#                          $KEY, both owned by the postgres OS user (created by
#                          `bunker init` run as that user), and $T/srv, a directory
#                          owned by postgres for restored data directories. Servers
#                          started with pg_start or pitr_start are stopped at exit.
#   bkp ARGS...            bunker -q --repo $REPO --key-file $KEY ARGS, as postgres
#   bkp_rc ARGS...         the same, exit code only (stdout and stderr dropped)
#   t_fails DESC CMD...    ok when CMD exits non-zero; sets $OUT $ERR $RC as t_rc
#   pitr_archive_command [CLUSTER]
#                          the archive_command line for the repository
#   pitr_archiving_on [CLUSTER]
#                          archive_mode on + that archive_command + a large
#                          wal_keep_size for the pg_start server, then restart it
#   pitr_conninfo          a conninfo for the pg_start server (its socket)
#   pitr_switch_wal        write a record, force a segment switch, print the name
#                          of the completed segment (never a no-op)
#   pitr_wait_archived SEG [SECS]
#                          wait until the pg_start server has archived SEG
#                          (archive_status/SEG.done, or pg_stat_archiver past it)
#   pitr_last_archived     pg_stat_archiver.last_archived_wal of that server
#   json_field JSON KEY    a number or string field of a one-line json object
#   snap_line ID           the object of snapshot ID from a `snapshots --json` array
#                          on stdin
#   pitr_restore_writing DIR
#                          start `pg restore latest --target DIR` in the background,
#                          return once it writes DIR/base (see below)
#   pitr_restore_pause, pitr_restore_resume
#                          stop that restore's bunker (SIGSTOP), let it go on
#   pitr_restore_faulted MODE PATH DIR
#                          `pg restore latest --target DIR` under io-fault.c's
#                          IO_FAULT=MODE for paths holding PATH (kill: SIGKILL as
#                          it creates its first such file, status 137); returns
#                          its status, its stderr the caller's
#   pitr_segment_of SNAPSHOT-ID FIELD [SQL-CMD [REPO-CMD]]
#                          the WAL file holding the base backup's start_lsn or
#                          stop_lsn (pg_walfile_name, by SQL-CMD, default pg_sql, on
#                          the server's timeline), from the snapshot as REPO-CMD
#                          (default bkp) lists it
#
# Servers on restored data directories (one at a time in $R_*):
#   pitr_start DATA [-c K=V]...
#                          start a server on DATA as postgres, on its own socket
#                          directory (no TCP), archive_mode off unless an option
#                          sets it; exports R_DATA R_PORT R_SOCK R_LOG
#   rsql SQL               run one statement on it, print the unaligned result
#   rpsql ARGS...          psql on it
#   rswitch_wal            pitr_switch_wal on it
#   rwait_archived SEG [SECS]
#                          pitr_wait_archived on it
#   pitr_wait_recovered [SECS]
#                          wait until it has left recovery (pg_is_in_recovery() f)
#   pitr_stop [DATA]       stop it (fast)
#   pitr_log_tail [N]      the last N lines of its log, for diagnostics

. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/lib-pg.sh"

_pitr_datas=()

pitr_stop_all() {
	local d
	for d in "${_pitr_datas[@]}"; do
		[ -f "$d/postmaster.pid" ] &&
			pg_as_server "$PG_BIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1
	done
	pg_stop
	return 0
}

pitr_init() {
	it_init "$1"
	# postgres must reach everything under $T (mktemp made it 0700)
	chmod 711 "$T"
	at_exit pitr_stop_all
	mkdir -p "$T/bk" "$T/srv"
	chown postgres: "$T/bk" "$T/srv"
	REPO=$T/bk/repo
	KEY=$T/bk/key
	if ! pg_as_server "$BUNKER" -q --repo "$REPO" --new-key-file "$KEY" init >"$T/init.log" 2>&1; then
		echo "Bail out! bunker init as postgres failed: $(cat "$T/init.log")"
		exit 1
	fi
	SRV=$T/srv
	export REPO KEY SRV
}

# t_fails DESC CMD...: ok when CMD exits non-zero; $OUT, $ERR, $RC as t_rc.
t_fails() {
	local desc=$1
	shift
	_t_out_n=$((_t_out_n + 1))
	OUT=$T/.out.$_t_out_n
	ERR=$T/.err.$_t_out_n
	"$@" >"$OUT" 2>"$ERR"
	RC=$?
	if [ "$RC" != 0 ]; then
		ok "$desc"
	else
		not_ok "$desc" "command: $*" "exit 0, want non-zero"
		return 1
	fi
}

bkp() { pg_as_server "$BUNKER" -q --repo "$REPO" --key-file "$KEY" "$@"; }
bkp_rc() { bkp "$@" >/dev/null 2>&1; }

pitr_archive_command() {
	printf "'%s' -q --repo '%s' --key-file '%s' --cluster '%s' pg wal-push %%p" \
		"$BUNKER" "$REPO" "$KEY" "${1:-main}"
}

pitr_archiving_on() {
	pg_conf_set archive_mode on
	pg_conf_set archive_command "$(pitr_archive_command "${1:-main}")"
	pg_conf_set wal_keep_size 4GB
	pg_restart
}

# pitr_now: the server's clock in UTC to the microsecond, as a --target-time
pitr_now() {
	echo "$(pg_sql "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")+00"
}

pitr_conninfo() { printf 'host=%s port=%s user=postgres dbname=postgres' "$PG_SOCKDIR" "$PGPORT"; }

pitr_switch_wal() {
	# pg_logical_emit_message (non-transactional) writes a record at once, so the
	# switch that follows cannot be a no-op at a segment's start.
	pg_psql -c "select pg_logical_emit_message(false, 'bunker-test', 'switch')" \
		-c "select pg_walfile_name(pg_switch_wal())" | tail -n 1
}

json_field() { printf '%s' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" | head -n 1; }
# (the array is one line: one object a line first)
snap_line() { sed 's/,{"id":/\n{"id":/g' | grep "\"id\":\"$1"; }

pitr_segment_of() {
	local m
	m=$(${4:-bkp} snapshots --json --name pg/main/base | snap_line "$1")
	${3:-pg_sql} "select pg_walfile_name('$(json_field "$m" "$2")')"
}

# pitr_restore_writing DIR: starts `pg restore latest --target DIR` in the background
# (stderr to $T/int.err) and returns once it is writing DIR/base, or has ended.
# RESTORE_PID is the job, RESTORE_KID bunker itself, the job's last descendant
# (RESTORE_CHAIN: the job's descendants down to it). As root bunker runs below
# runuser, which passes SIGTERM on, but neither SIGSTOP nor SIGHUP.
pitr_restore_writing() {
	local kid
	bkp pg restore latest --target "$1" >/dev/null 2>"$T/int.err" &
	RESTORE_PID=$!
	for _ in $(seq 1 5000); do
		[ -n "$(ls -A "$1/base" 2>/dev/null)" ] && break
		kill -0 "$RESTORE_PID" 2>/dev/null || break
	done
	RESTORE_KID=$RESTORE_PID
	RESTORE_CHAIN=
	while kid=$(pgrep -P "$RESTORE_KID" | head -n 1) && [ -n "$kid" ]; do
		RESTORE_KID=$kid
		RESTORE_CHAIN+=" $kid"
	done
}
# pitr_restore_pause: stops bunker (SIGSTOP); true once it and runuser above it are
# stopped (runuser stops itself when bunker does), false if bunker ended first.
# pitr_restore_resume resumes both (runuser resumes bunker in turn: resumed first,
# before it stopped itself, it would stop after and hold the job).
pitr_restore_pause() {
	local pid st
	kill -STOP "$RESTORE_KID" 2>/dev/null || return 1
	for pid in $RESTORE_CHAIN; do
		for _ in $(seq 1 250); do
			st=$(ps -o state= -p "$pid")
			[ "$st" = T ] || [ "$st" = Z ] || [ -z "$st" ] && break
			sleep 0.02
		done
		[ "$st" = T ] || return 1
	done
}
pitr_restore_resume() {
	local pid
	for pid in $RESTORE_CHAIN; do
		kill -CONT "$pid" 2>/dev/null
	done
	return 0
}
pitr_restore_faulted() {
	pg_as_server env LD_PRELOAD="$IO_FAULT_LIB" IO_FAULT="$1" IO_FAULT_PATH="$2" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg restore latest --target "$3"
}
pitr_last_archived() { pg_sql "select coalesce(last_archived_wal, '') from pg_stat_archiver"; }

# _pitr_wait_archived DATA SQLFN SEG SECS
_pitr_wait_archived() {
	local data=$1 sqlfn=$2 seg=$3 secs=$4 i last
	for ((i = 0; i < secs * 10; i++)); do
		[ -e "$data/pg_wal/archive_status/$seg.done" ] && return 0
		last=$($sqlfn "select coalesce(last_archived_wal, '') from pg_stat_archiver" 2>/dev/null)
		[ -n "$last" ] && [ "${last:0:8}" = "${seg:0:8}" ] && [[ ! "${last:0:24}" < "${seg:0:24}" ]] &&
			return 0
		sleep 0.1
	done
	return 1
}

pitr_wait_archived() { _pitr_wait_archived "$PG_DATA" pg_sql "$1" "${2:-60}"; }

pitr_start() {
	local data=$1 port
	shift
	R_DATA=$data
	R_SOCK=$data.sock
	R_LOG=$data.log
	mkdir -p "$R_SOCK"
	chown postgres: "$R_SOCK"
	: >"$R_LOG"
	chown postgres: "$R_LOG"
	port=$(_pg_free_port) || return 1
	R_PORT=$port
	_pitr_datas+=("$data")
	export R_DATA R_PORT R_SOCK R_LOG
	local opts="-c port=$port -c unix_socket_directories='$R_SOCK' -c listen_addresses=''"
	opts+=" -c archive_mode=off"
	while [ $# -gt 0 ]; do
		if [ "$1" = -c ]; then
			opts+=" -c '${2//\'/\'\\\'\'}'"
			shift 2
		else
			shift
		fi
	done
	pg_as_server "$PG_BIN/pg_ctl" -D "$data" -l "$R_LOG" -w -t 120 -o "$opts" start \
		>"$data.pg_ctl.log" 2>&1
}

rpsql() { "$PG_BIN/psql" -X -At -v ON_ERROR_STOP=1 -h "$R_SOCK" -p "$R_PORT" -U postgres "$@"; }
rsql() { rpsql -d postgres -c "$1"; }

rswitch_wal() {
	rpsql -d postgres -c "select pg_logical_emit_message(false, 'bunker-test', 'switch')" \
		-c "select pg_walfile_name(pg_switch_wal())" | tail -n 1
}

rwait_archived() { _pitr_wait_archived "$R_DATA" rsql "$1" "${2:-60}"; }

pitr_wait_recovered() {
	local secs=${1:-120} i
	for ((i = 0; i < secs * 10; i++)); do
		[ "$(rsql "select pg_is_in_recovery()" 2>/dev/null)" = f ] && return 0
		sleep 0.1
	done
	return 1
}

pitr_stop() {
	local data=${1:-$R_DATA}
	[ -f "$data/postmaster.pid" ] || return 0
	pg_as_server "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1
}

pitr_log_tail() { tail -n "${1:-15}" "$R_LOG" 2>/dev/null; }
