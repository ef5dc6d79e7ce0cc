# tests/integration/lib-pg.sh: start and drive a throwaway PostgreSQL 15 server.
#
# Source it from bash:   . tests/integration/lib-pg.sh
#
#   pg_start DIR         initdb DIR/data (owned by the postgres OS user when run as
#                        root: the server refuses to run as root), listen on a free
#                        loopback port (and a socket in DIR/sock), wal_level=replica,
#                        wal senders, trust auth for local and 127.0.0.1 including
#                        replication; start it (pg_ctl -w) and export:
#                          PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=postgres
#                          PG_DATA (the data directory) PG_BIN (server binaries)
#                          PG_DIR (DIR) PG_SOCKDIR PG_LOG (server log)
#                        fsync is off (a test server need not survive power loss;
#                        pg_conf_set fsync on if a test needs it). Returns non-zero
#                        (after printing the log) if it fails. One server per shell.
#                        PG_INITDB_OPTS, if set, adds initdb options.
#   pg_stop              stop it (fast mode); safe to call twice or after a failed start
#   pg_conf_set KEY VAL  set a server parameter in postgresql.conf (VAL is quoted
#                        for you); takes effect at pg_reload or pg_restart
#   pg_reload            pg_ctl reload, then wait until the server has read it
#   pg_restart           pg_ctl restart -w (fast)
#   pg_psql ARGS...      psql -X -At -v ON_ERROR_STOP=1 ARGS (as $PGUSER)
#   pg_sql "SQL"         run one statement, print the unaligned result
#   pg_as_server CMD...  run CMD as the server's OS user (runuser when root)
#   pg_sysid             the cluster's system identifier (pg_controldata)
#   pg_switch_wal        force a segment switch and print the name of the segment
#                        that was completed
#
# Every command that touches the data directory runs as the server's OS user;
# files the tests need to read back are readable by root anyway.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

pg_as_server() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Prints a port nothing listens on right now (the start retries on a race).
_pg_free_port() {
	local port i
	for i in $(seq 1 200); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

pg_start() {
	local dir=$1 attempt port
	if [ -z "$dir" ]; then
		echo "pg_start: need a directory" >&2
		return 2
	fi
	mkdir -p "$dir" || return 1
	dir=$(cd "$dir" && pwd)
	PG_DIR=$dir
	PG_DATA=$dir/data
	PG_SOCKDIR=$dir/sock
	PG_LOG=$dir/server.log
	mkdir -p "$PG_SOCKDIR"
	if [ "$(id -u)" = 0 ]; then
		# The server user must reach DIR: open every parent for traversal
		# (mktemp -d makes 0700 directories) and hand DIR over.
		chown postgres: "$dir" "$PG_SOCKDIR"
		local d=$dir
		while ! runuser -u postgres -- test -x "$dir" && [ "$d" != / ]; do
			d=$(dirname "$d")
			chmod o+x "$d" 2>/dev/null || break
		done
	fi

	# shellcheck disable=SC2086 # PG_INITDB_OPTS: more initdb options, word-split
	pg_as_server "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 \
		--no-sync --no-instructions ${PG_INITDB_OPTS:-} >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		return 1
	}
	pg_as_server tee -a "$PG_DATA/postgresql.conf" >/dev/null <<EOF

# written by tests/integration/lib-pg.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKDIR'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
fsync = off
full_page_writes = on
shared_buffers = 32MB
max_connections = 30
logging_collector = off
log_min_messages = warning
EOF
	pg_as_server tee "$PG_DATA/pg_hba.conf" >/dev/null <<EOF
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    replication  all   127.0.0.1/32  trust
EOF

	for attempt in 1 2 3 4 5; do
		port=$(_pg_free_port) || return 1
		pg_conf_set port "$port"
		if pg_as_server "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start \
			>"$dir/pg_ctl.log" 2>&1; then
			export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
			export PG_DATA PG_BIN PG_DIR PG_SOCKDIR PG_LOG
			return 0
		fi
		# A port taken between the probe and the bind: try another one.
		grep -q "could not bind\|Address already in use" "$PG_LOG" 2>/dev/null || break
	done
	echo "pg_start: server did not start" >&2
	cat "$dir/pg_ctl.log" "$PG_LOG" >&2 2>/dev/null
	return 1
}

pg_stop() {
	[ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ] || return 0
	pg_as_server "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1
}

pg_conf_set() {
	local key=$1 val=$2
	val=${val//\'/\'\'}
	printf "%s = '%s'\n" "$key" "$val" | pg_as_server tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

pg_reload() {
	# SIGHUP is asynchronous: wait until a new session sees the file re-read.
	local before i
	before=$(pg_sql "select pg_conf_load_time()") || return 1
	pg_as_server "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null || return 1
	for i in $(seq 1 50); do
		[ "$(pg_sql "select pg_conf_load_time()")" != "$before" ] && return 0
		sleep 0.1
	done
	return 0
}

pg_restart() {
	pg_as_server "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -m fast -w -t 60 restart \
		>/dev/null 2>&1
}

pg_psql() {
	"$PG_BIN/psql" -X -At -v ON_ERROR_STOP=1 "$@"
}

pg_sql() {
	pg_psql -c "$1"
}

pg_sysid() {
	pg_as_server "$PG_BIN/pg_controldata" -D "$PG_DATA" |
		sed -n 's/^Database system identifier: *//p'
}

pg_switch_wal() {
	# A record first (its own statement: txid_current() alone writes none), so
	# that the switch cannot be a no-op at a segment start.
	pg_sql "select pg_logical_emit_message(false, 'bunker', 'switch')" >/dev/null
	pg_sql "select pg_walfile_name(pg_switch_wal())"
}
