#!/bin/bash
# tests/pg/pg-live.sh MODE EXE: runs a pg/ test program against a throwaway
# PostgreSQL 15 started with tests/integration/lib-pg.sh. Prints the program's TAP.
#   wal          EXE = test-pg-wal: checks the first page of a real, just-completed
#                segment (name, system identifier from pg_controldata)
#   replication  EXE = test-pg-replication: base backup (with a tablespace) and
#                streaming against the server
set -u
mode=$1
exe=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../integration/lib-pg.sh"

if [ ! -x "$PG_BIN/postgres" ]; then
	echo "1..0 # SKIP no PostgreSQL server in $PG_BIN"
	exit 0
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
	echo "1..0 # SKIP running as root and there is no postgres user"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bk-pg-live.XXXXXX")
cleanup() {
	pg_stop
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! pg_start "$tmp/pg" >"$tmp/start.log" 2>&1; then
	echo "Bail out! PostgreSQL did not start"
	sed 's/^/# /' "$tmp/start.log"
	exit 1
fi
# Nothing may change the data directory behind the tests' back.
pg_conf_set autovacuum off
pg_reload || { echo "Bail out! reload failed"; exit 1; }

fail_setup() {
	echo "Bail out! setup failed: $1"
	sed 's/^/# /' "$PG_LOG"
	exit 1
}

case $mode in
wal)
	pg_sql "create table t as select g from generate_series(1, 10000) g" >/dev/null ||
		fail_setup "create table"
	seg=$(pg_switch_wal) || fail_setup "pg_switch_wal"
	cp "$PG_DATA/pg_wal/$seg" "$tmp/$seg" || fail_setup "copy $seg"
	"$exe" --segment "$tmp/$seg" --name "$seg" --sysid "$(pg_sysid)"
	;;
replication)
	ts=$tmp/ts1
	mkdir -p "$ts"
	[ "$(id -u)" = 0 ] && chown postgres: "$ts"
	pg_sql "create tablespace ts1 location '$ts'" >/dev/null || fail_setup "create tablespace"
	pg_sql "create table in_ts tablespace ts1 as
	        select g, md5(g::text) as h from generate_series(1, 20000) g" >/dev/null ||
		fail_setup "table in tablespace"
	pg_sql "create table in_main as select g from generate_series(1, 50000) g" >/dev/null ||
		fail_setup "table"
	pg_sql "checkpoint" >/dev/null || fail_setup "checkpoint"
	oid=$(pg_sql "select oid from pg_tablespace where spcname = 'ts1'") || fail_setup "oid"
	"$exe" --conninfo "host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres" \
		--datadir "$PG_DATA" --sysid "$(pg_sysid)" --tablespace "$oid:$ts"
	;;
*)
	echo "Bail out! unknown mode $mode"
	exit 1
	;;
esac
