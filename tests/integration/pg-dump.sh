#!/bin/bash
# pg-dump.sh: `bunker pg dump` of a real PostgreSQL 15 cluster. Database app has several
# schemas (one with a non-ASCII name), text in many scripts with emoji and combining
# marks, every byte value in a bytea, a sequence, a view, a function, comments and large
# objects (1 MiB random, and an empty one); database "café db" has a name with a space
# and UTF-8. The dumps restore with `bunker cat ... | pg_restore` into new databases that
# equal the originals: plain pg_dump of both is identical (but for the \restrict
# lines), as are the table contents and large objects by md5. The globals snapshot
# holds the roles. The databases are pg_dumpall's (templates but template0; a name
# with a newline). A pg_dump that fails (a user without permission; a pg_dump that
# writes some bytes then exits 1; one killed by a signal) fails the command and adds
# no dump snapshot of that database; the others are still dumped. An error of the
# repository's stops at once (the globals' too, naming them), and stops the pg_dump
# then running. A pg_dump or pg_dumpall older than the server is refused before any
# dump. A password in --dbname reaches the dump programs in PGPASSWORD, not on their
# command lines. A base backup passes on the server's
# WARNINGs, not its NOTICEs. A pg_dump that writes nothing for --stall-timeout
# seconds (waiting for a lock) is stopped and counts as failed. A dump under a second cluster name of the system warns,
# naming the first. A server that asks for a password none gives fails the dump of
# that database at once, even in a terminal (pg_dump --no-password), and the globals
# are read through the database --dbname names (pg_dumpall -l).
. "$SRCDIR/tests/integration/lib-pitr.sh"
pitr_init pg-dump

pg_start "$T/pg" || { echo "Bail out! PostgreSQL did not start"; exit 1; }

pg_sql "create role bunker_owner login" >/dev/null
pg_sql "create role noperm login" >/dev/null
pg_sql "create database app owner bunker_owner" >/dev/null
pg_sql 'create database "café db"' >/dev/null
lo_hex=$(gen_bytes 42 1048576 | od -An -v -tx1 | tr -d ' \n')
pg_psql -d app >/dev/null <<EOF
create schema s1;
create schema "схема";
create schema s3 authorization bunker_owner;
create table s1.texts (id serial primary key, script text not null, body text not null);
insert into s1.texts (script, body) values
  ('latin', 'Ça va? Größe, façade, smørrebrød, Ångström, œuvre'),
  ('greek', 'Ελληνικά: γειά σου κόσμε'),
  ('cyrillic', 'Русский текст: съешь же ещё этих мягких французских булок'),
  ('cjk', '日本語のテキスト、中文字符、한국어 문장'),
  ('arabic', 'مرحبا بالعالم'),
  ('hebrew', 'שלום עולם'),
  ('devanagari', 'नमस्ते दुनिया'),
  ('thai', 'สวัสดีชาวโลก'),
  ('emoji', '🐘🚀 👩‍👩‍👧‍👦 🇫🇷 🏳️‍🌈 ✔︎'),
  ('combining', 'e' || U&'\0301' || ' a' || U&'\030A' || ' Z' || U&'\0335\0336'),
  ('controls', E'tab\there\nnewline and a backslash \\\\ and ''quotes'''),
  ('astral', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀 𠜎');
create table "схема"."таблица" ("ключ" int primary key, "значение" text);
insert into "схема"."таблица" select g, repeat('ё', g % 50) || g from generate_series(1, 5000) g;
create table s3.bytes (id int primary key, b bytea);
alter table s3.bytes owner to bunker_owner;
insert into s3.bytes values (1, (select string_agg(set_byte('\x00'::bytea, 0, g), ''::bytea order by g) from generate_series(0, 255) g));
create sequence s1.counter start 1000;
select nextval('s1.counter') from generate_series(1, 17);
create view s1.v as select script, length(body) as len from s1.texts;
create function s3.add(a int, b int) returns int language sql immutable as 'select a + b';
comment on table s1.texts is 'Texte en plusieurs écritures — 多言語';
create index on s1.texts (script);
select lo_from_bytea(424242, decode('$lo_hex', 'hex'));
select lo_from_bytea(424243, '');
comment on large object 424242 is 'un gros objet';
EOF
t_is "$(pg_psql -d app -c "select count(*) from pg_largeobject_metadata")" 2 \
	"database app has two large objects"
pg_psql -d "café db" -c "create table t (x text); insert into t values ('dans la base « café db »')" >/dev/null

size0=$(du -sb "$REPO/data" | cut -f1)
t_rc 0 "pg dump" bkp --json pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" "" "without a word on stderr (template0 accepts no connections, and is not named)"
snaps=$(bkp snapshots --json)
for n in pg/main/dump/app "pg/main/dump/café db" pg/main/dump/postgres pg/main/globals; do
	t_true "snapshot $n exists" grep -qF "\"name\":\"$n\"" <<<"$snaps"
done
t_is "$(bkp cat latest --name pg/main/dump/app 2>/dev/null | head -c 5)" PGDMP "the dump is in pg_dump's custom format"

# Dumped again, unchanged, the databases store little: the uncompressed custom format
# differs only in its header's time, and the content-defined chunks around it (the
# first dump stored a random 1 MiB large object; the globals' SQL has a random
# \restrict key, from 15.14 on)
size1=$(du -sb "$REPO/data" | cut -f1)
t_rc 0 "pg dump again, nothing changed" bkp pg dump --dbname "$(pitr_conninfo)"
size2=$(du -sb "$REPO/data" | cut -f1)
t_true "... stores less than a quarter of what the first did ($((size2 - size1)) of $((size1 - size0)) bytes)" \
	test $((4 * (size2 - size1))) -lt $((size1 - size0))

# A wrong --cluster (the system is dumped here as 'main'): the dumps are taken, with
# a warning naming 'main', as wal-push and basebackup give it.
t_rc 0 "pg dump --cluster other of the system dumped as 'main'" \
	bkp --cluster other pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" "bunker: warning: system $(pg_sysid) is also archived here as cluster 'main' (--cluster main?)" \
	"... warns that the system is archived here as cluster 'main'"
t_true "... and dumps under 'other'" grep -qF '"name":"pg/other/dump/app"' <<<"$(bkp snapshots --json)"

# ---- restore into new databases and compare ----
# plain_dump DB: pg_dump in plain format without the random \restrict lines
plain_dump() {
	"$PG_BIN/pg_dump" --no-owner -d "$1" | grep -v -e '^\\restrict ' -e '^\\unrestrict '
}
# contents DB: tables and large objects by md5
contents() {
	pg_psql -d "$1" <<'EOF'
select 'texts', md5(string_agg(id || '|' || script || '|' || body, E'\n' order by id)) from s1.texts;
select 'tabl', md5(string_agg("ключ" || '|' || "значение", E'\n' order by "ключ")) from "схема"."таблица";
select 'bytes', md5(b), length(b) from s3.bytes;
select 'seq', last_value from s1.counter;
select 'lo', oid, md5(lo_get(oid)), length(lo_get(oid)), obj_description(oid, 'pg_largeobject') from pg_largeobject_metadata order by oid;
select 'add', s3.add(2, 3);
select 'v', count(*) from s1.v;
EOF
}

pg_sql "create database app_restored" >/dev/null
bkp cat latest --name pg/main/dump/app >"$T/app.dump"
t_is "$?" 0 "bunker cat of the app dump"
"$PG_BIN/pg_restore" --exit-on-error -d app_restored <"$T/app.dump" >"$T/pgr.log" 2>&1
t_is "$?" 0 "pg_restore of the app dump into app_restored" || diag "$(head -n 10 "$T/pgr.log")"
bkp cat latest --name pg/main/dump/app 2>/dev/null | "$PG_BIN/pg_restore" --list >"$T/toc" 2>&1
t_is "$?" 0 "bunker cat | pg_restore --list reads the dump from a pipe"
plain_dump app >"$T/app.sql"
plain_dump app_restored >"$T/app_restored.sql"
t_cmp "$T/app.sql" "$T/app_restored.sql" "plain pg_dump of app and app_restored are identical" ||
	diag "$(diff "$T/app.sql" "$T/app_restored.sql" | head -n 20)"
t_true "the plain dump has the emoji" grep -qF '👩‍👩‍👧‍👦' "$T/app_restored.sql"
contents app >"$T/app.contents"
contents app_restored >"$T/app_restored.contents"
t_cmp "$T/app.contents" "$T/app_restored.contents" "tables, sequence and large objects match by md5"
t_is "$(pg_psql -d app_restored -c "select md5(lo_get(424242))")" \
	"$(gen_bytes 42 1048576 | md5sum | cut -c1-32)" "the 1 MiB large object is byte-exact"
t_is "$(pg_psql -d app_restored -c "select body from s1.texts where script = 'emoji'")" \
	'🐘🚀 👩‍👩‍👧‍👦 🇫🇷 🏳️‍🌈 ✔︎' "the emoji row reads back exactly"
t_is "$(pg_psql -d app_restored -c "select tableowner from pg_tables where tablename = 'bytes'")" \
	bunker_owner "object owners are restored"

pg_sql "create database cafe_restored" >/dev/null
bkp cat latest --name "pg/main/dump/café db" | "$PG_BIN/pg_restore" --exit-on-error -d cafe_restored 2>"$T/pgr2.log"
t_is "$?" 0 "the dump of \"café db\" restores" || diag "$(head -n 5 "$T/pgr2.log")"
t_is "$(pg_psql -d cafe_restored -c "select x from t")" "dans la base « café db »" "with its row"

bkp cat latest --name pg/main/globals >"$T/globals.sql"
t_is "$?" 0 "bunker cat of the globals"
t_true "the globals create the roles" grep -q 'CREATE ROLE bunker_owner' "$T/globals.sql"

# ---- failing dumps ----
# count_dumps: how many snapshots are named pg/main/dump/*
count_dumps() { bkp snapshots --json | grep -o '"name":"pg/main/dump/[^"]*"' | wc -l; }
# count_named NAME: how many snapshots are named NAME (a regular expression, in JSON)
count_named() { bkp snapshots --json | grep -o "\"name\":\"$1\"" | wc -l; }
before=$(count_named pg/main/dump/app)

t_fails "pg dump as a user without permission on app's tables fails" \
	bkp pg dump --dbname "$(pitr_conninfo) user=noperm"
t_true "the message says why" grep -qi "permission denied" "$ERR" || diag "$(cat "$ERR")"
t_true "bunker's own message names the database" grep -q "^bunker: dump: .* dumps failed ('app'" "$ERR" ||
	diag "$(cat "$ERR")"
t_is "$(count_named pg/main/dump/app)" "$before" "and adds no dump of app"

# A --dbname naming no database: the databases are listed from postgres, as
# pg_dumpall lists them, not from libpq's default, a database named as the user
# (which a role made for backups rarely has: the dump failed, "database "dumper"
# does not exist")
# (lib-pg.sh exports PGDATABASE, which libpq's default would take first: unset here)
pg_sql "create role dumper superuser login" >/dev/null
bkp_nodb() { env -u PGDATABASE "$(command -v runuser)" -u postgres -- \
	"$BUNKER" -q --repo "$REPO" --key-file "$KEY" "$@"; }
t_rc 0 "pg dump as a role that has no database of its name, --dbname naming none" \
	bkp_nodb pg dump --dbname "host=$PG_SOCKDIR port=$PGPORT user=dumper" || diag "$(cat "$ERR")"
t_is "$(count_named pg/main/dump/app)" $((before + 1)) "and dumps app"
# --dbname '' (libpq's defaults, from the environment here) names none either (it
# was taken for a bare name: "database "dumper" does not exist")
PGHOST=$PG_SOCKDIR PGUSER=dumper t_rc 0 "pg dump --dbname '' as that role" \
	bkp_nodb pg dump --dbname '' || diag "$(cat "$ERR")"
t_is "$(count_named pg/main/dump/app)" $((before + 2)) "and dumps app"
t_rc 1 "with a database named, that one is listed from" \
	bkp_nodb pg dump --dbname "host=$PG_SOCKDIR port=$PGPORT user=dumper dbname=nosuchdb"
t_true "(the error names it)" grep -q 'database "nosuchdb" does not exist' "$ERR" ||
	diag "$(cat "$ERR")"

fake=$T/fakebin
mkdir "$fake"
chmod 755 "$fake"
ln -s "$PG_BIN/pg_dumpall" "$fake/pg_dumpall"
# fake_dump_fails WHAT ENDING: a pg_dump that writes the start of a dump, then runs
# the shell line ENDING, must make `pg dump` fail and add no dump snapshot.
nfake=0
fake_dump_fails() {
	nfake=$((nfake + 1))
	local ran="$SRV/fake-ran-$nfake" before
	cat >"$fake/pg_dump" <<EOF
#!/bin/sh
touch '$ran'
printf 'PGDMP'
head -c 300000 /dev/zero
$2
EOF
	chmod 755 "$fake/pg_dump"
	before=$(count_dumps)
	BUNKER_PG_BIN=$fake t_fails "pg dump with a pg_dump that $1 fails" \
		bkp pg dump --dbname "$(pitr_conninfo)"
	t_true "(the fake pg_dump ran)" test -e "$ran"
	t_is "$(count_dumps)" "$before" "and adds no dump snapshot"
}
fake_dump_fails "writes then exits 1" 'echo "pg_dump: error: simulated failure" >&2; exit 1'
fake_dump_fails "is killed by a signal" 'kill -9 $$'

# A pg_dump missing, or older than the server (which it refuses to dump), is said
# once, in one line, before anything is dumped: it failed once per database,
# with "pg_dump failed with exit code 127" for a missing one.
mkdir "$T/nobin"
chmod 755 "$T/nobin"
before=$(count_dumps)
BUNKER_PG_BIN=$T/nobin t_rc 1 "pg dump without a pg_dump in BUNKER_PG_BIN exits 1" \
	bkp pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" "bunker: dump: cannot run $T/nobin/pg_dump (in the directory BUNKER_PG_BIN names): No such file or directory" \
	"in one line naming it"
# found on the PATH but not executable: not said to be missing from it (it was:
# "Permission denied (not on the PATH: install PostgreSQL's client programs...)")
mkdir "$T/noexec"
chmod 755 "$T/noexec"
printf '#!/bin/sh\n' >"$T/noexec/pg_dump"
chmod 644 "$T/noexec/pg_dump"
t_rc 1 "pg dump with a pg_dump on the PATH that is not executable exits 1" \
	pg_as_server env PATH="$T/noexec" "$BUNKER" -q --repo "$REPO" --key-file "$KEY" \
	pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" "bunker: dump: cannot run pg_dump: Permission denied" "in one line naming it"
# BUNKER_PG_BIN set but empty is unset: the PATH's pg_dump (it was /pg_dump)
t_rc 1 "pg dump with BUNKER_PG_BIN empty looks on the PATH" \
	pg_as_server env BUNKER_PG_BIN= PATH="$T/noexec" "$BUNKER" -q --repo "$REPO" --key-file "$KEY" \
	pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" "bunker: dump: cannot run pg_dump: Permission denied" "... and finds it there"
# fake_version PROG LINE: $fake/PROG answers --version with LINE, else is PROG
fake_version() {
	rm -f "$fake/$1" # (a symbolic link to the real one is not written through)
	cat >"$fake/$1" <<EOF
#!/bin/sh
[ "\$1" = --version ] && { echo '$2'; exit 0; }
exec '$PG_BIN/$1' "\$@"
EOF
	chmod 755 "$fake/$1"
}
fake_version pg_dump 'pg_dump (PostgreSQL) 14.9 (Debian 14.9-1.pgdg120+1)'
BUNKER_PG_BIN=$fake t_rc 1 "pg dump with a pg_dump older than the server exits 1" \
	bkp pg dump --dbname "$(pitr_conninfo)"
t_is "$(sed 's/(15\.[0-9]*)/(15.N)/' "$ERR")" \
	"bunker: dump: $fake/pg_dump is version 14.9, older than the server (15.N), and cannot dump it: set BUNKER_PG_BIN to the bin directory of PostgreSQL 15 or later" \
	"in one line naming both versions"
# A pg_dump that hangs when asked its version (a wrapper waiting on something) is
# stopped after 5 s instead of hanging the dump (`timeout` ends a hang: exit 124).
cat >"$fake/pg_dump" <<EOF
#!/bin/sh
[ "\$1" = --version ] && { sleep 601; exit 0; } # (no exec: a child of the wrapper)
exec '$PG_BIN/pg_dump' "\$@"
EOF
t0=$(date +%s)
t_rc 1 "pg dump with a pg_dump whose --version hangs exits 1" \
	pg_as_server env BUNKER_PG_BIN="$fake" timeout 60 "$BUNKER" -q --repo "$REPO" \
	--key-file "$KEY" pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" "bunker: dump: $fake/pg_dump --version did not finish within 5 s: it was stopped (check the program, or BUNKER_PG_BIN)" \
	"in one line naming it"
t_true "... after about 5 s ($(( $(date +%s) - t0 )) s)" test "$(( $(date +%s) - t0 ))" -lt 20
t_true "... and the sleep it started was stopped too" sh -c "! pgrep -f '^sleep 60[1]$' >/dev/null"
t_is "$(count_dumps)" "$before" "... and adds no dump snapshot"
# A pg_dump that cannot start (a library missing: the loader exits 127) is said
# before any dump, with what it wrote (it passed, and every database failed alike)
lib_error="$fake/pg_dump: error while loading shared libraries: libpq.so.5: cannot open shared object file: No such file or directory"
cat >"$fake/pg_dump" <<EOF
#!/bin/sh
[ "\$1" = --version ] && { echo '$lib_error' >&2; exit 127; }
exec '$PG_BIN/pg_dump' "\$@"
EOF
BUNKER_PG_BIN=$fake t_rc 1 "pg dump with a pg_dump whose --version exits 127 exits 1" \
	bkp pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" "bunker: dump: $fake/pg_dump --version failed with exit code 127: $lib_error" \
	"in one line naming it, with what it said"
t_is "$(count_dumps)" "$before" "... and adds no dump snapshot"

# What the programs write on their standard error: a wrapper that says much on
# --version (it got SIGPIPE once bunker had read 255 bytes) passes; what pg_dump
# writes there stays out of the dump, with bunker's stdout closed too (a review
# saw the file bunker keeps it in take descriptor 1 in a copy of the code, where
# the child's stderr became its dump's pipe; here the repository's descriptors
# come first); and what a program may keep there is bounded (it lived in memory,
# as much as it wrote), the rest counted
cat >"$fake/pg_dump" <<EOF
#!/bin/sh
[ "\$1" = --version ] && { head -c 100000 /dev/zero | tr '\\0' v; echo; exec '$PG_BIN/pg_dump' --version; }
case "\$*" in
*"dbname='postgres'"*) head -c 100000 /dev/zero | tr '\\0' '\\n' | sed 's/^/pg_dump: warning: chatty/' >&2 ;;
esac
exec '$PG_BIN/pg_dump' "\$@"
EOF
before_pg=$(count_named pg/main/dump/postgres)
pg_as_server env BUNKER_PG_BIN="$fake" "$BUNKER" -q --repo "$REPO" --key-file "$KEY" \
	pg dump --dbname "$(pitr_conninfo)" >&- 2>"$T/closed.err"
t_is "$(count_named pg/main/dump/postgres)" $((before_pg + 1)) \
	"pg dump with its stdout closed, the pg_dump wrapper chatty on --version, dumps postgres" ||
	diag "$(head -c 300 "$T/closed.err")"
t_is "$(bkp cat latest --name pg/main/dump/postgres | grep -a -c chatty)" 0 \
	"... and none of what pg_dump wrote on its stderr is in that dump"
t_true "... which is printed" grep -q "^pg_dump: warning: chatty$" "$T/closed.err"
more=$(sed -n 's/^pg_dump wrote \([0-9]*\) more bytes of messages, not shown$/\1/p' "$T/closed.err")
t_true "... up to 64 KiB, the rest counted ($more bytes), up to 1 MiB kept" \
	test -n "$more" -a "${more:-0}" -gt 0 -a "${more:-0}" -le $((1048576 - 65536))

# A version past any real one (99999999999999999999 overflowed, under UBSan too, and
# read as older than the server) is newer: the dump runs.
fake_version pg_dump 'pg_dump (PostgreSQL) 99999999999999999999.1'
BUNKER_PG_BIN=$fake t_rc 0 "pg dump with a pg_dump of version 99999999999999999999.1 runs" \
	bkp pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" "" "... and says nothing"
# so is pg_dumpall's version checked, before the first dump (else every database was
# dumped, and the globals failed)
fake_version pg_dumpall 'pg_dumpall (PostgreSQL) 14.9'
before=$(count_dumps)
BUNKER_PG_BIN=$fake t_rc 1 "pg dump with a pg_dumpall older than the server exits 1" \
	bkp pg dump --dbname "$(pitr_conninfo)"
t_is "$(sed 's/(15\.[0-9]*)/(15.N)/' "$ERR")" \
	"bunker: dump: $fake/pg_dumpall is version 14.9, older than the server (15.N), and cannot dump it: set BUNKER_PG_BIN to the bin directory of PostgreSQL 15 or later" \
	"in one line naming it"
t_is "$(count_dumps)" "$before" "... before any dump"
rm -f "$fake/pg_dumpall"
ln -s "$PG_BIN/pg_dumpall" "$fake/pg_dumpall"

# The databases are pg_dumpall's: a template database and template1 too (template0
# is never dumped), and a name with a newline is one name (it was split in two, and
# the database itself never dumped).
before_t1=$(count_named pg/main/dump/template1)
pg_sql "create database tpl" >/dev/null
pg_psql -d tpl -c "create table kept (x int)" -c "insert into kept values (42)" >/dev/null
pg_sql "alter database tpl is_template true" >/dev/null
pg_sql "create database \"two
lines\"" >/dev/null
pg_psql -d "two
lines" -c "create table precious (x int)" >/dev/null
# template0 accepting connections, and an invalid database (a DROP DATABASE
# interrupted leaves datconnlimit -2): neither is dumped, as by pg_dumpall
pg_sql "alter database template0 allow_connections true" >/dev/null
pg_sql "create database half_dropped" >/dev/null
pg_sql "update pg_database set datconnlimit = -2 where datname = 'half_dropped'" >/dev/null
# and a database that accepts no connections is not dumped either (pg_dumpall
# leaves it out without a word), but is named in a warning
pg_sql "create database closed" >/dev/null
pg_sql "alter database closed allow_connections false" >/dev/null
t_rc 0 "pg dump" bkp pg dump --dbname "$(pitr_conninfo)"
t_is "$(cat "$ERR")" "bunker: warning: database 'closed' is not dumped: it does not accept connections (ALLOW_CONNECTIONS false)" \
	"a database that accepts no connections is named in a warning, the one line on stderr"
t_is "$(count_named pg/main/dump/closed)" 0 "and not dumped"
pg_sql "drop database closed" >/dev/null
pg_sql "update pg_database set datconnlimit = -1 where datname = 'half_dropped'" >/dev/null
pg_sql "alter database template0 allow_connections false" >/dev/null
t_is "$(count_named pg/main/dump/tpl)" 1 "a template database is dumped"
t_is "$(count_named pg/main/dump/template1)" $((before_t1 + 1)) "so is template1"
t_is "$(count_named pg/main/dump/template0)" 0 "template0 is not, even when it accepts connections"
t_is "$(count_named pg/main/dump/half_dropped)" 0 "nor an invalid database"
t_is "$(count_named 'pg/main/dump/two\\u000alines')" 1 "a name with a newline is one database"
bkp cat latest --name "pg/main/dump/two
lines" >"$T/two.dump"
t_true "whose dump holds its table" sh -c "'$PG_BIN/pg_restore' -l '$T/two.dump' | grep -q 'TABLE public precious'"

# A pg_dump that fails for one database (app) costs no other: the databases after
# it and the globals are dumped, then the command fails naming it.
cat >"$fake/pg_dump" <<EOF
#!/bin/sh
case "\$*" in
*"dbname='app'"*) printf 'PGDMP'; head -c 300000 /dev/zero; sleep 3; exit 1 ;;
esac
exec '$PG_BIN/pg_dump' "\$@"
EOF
before_app=$(count_named pg/main/dump/app)
before_pg=$(count_named pg/main/dump/postgres)
before_glob=$(count_named pg/main/globals)
BUNKER_PG_BIN=$fake t_rc 1 "pg dump with a pg_dump failing for database app exits 1" \
	bkp --json pg dump --dbname "$(pitr_conninfo)"
# (each summary's seconds are its own pg_dump's: the one after app's counted app's 3 s)
nsum=$(grep -c '"seconds":' "$OUT")
nslow=$(grep -o '"seconds":[0-9.]*' "$OUT" | awk -F: '$2 >= 3' | wc -l)
t_true "the $nsum summaries after it do not count its 3 s" test "$nsum" -ge 2 -a "$nslow" = 0 ||
	diag "$(cat "$OUT")"
t_is "$(wc -l <"$ERR")" 1 "with one line" || diag "$(cat "$ERR")"
t_true "naming it" grep -q "^bunker: dump: 1 of [0-9]* dumps failed ('app'); the others were saved: " "$ERR" ||
	diag "$(cat "$ERR")"
t_is "$(count_named pg/main/dump/app)" "$before_app" "no dump of app is added"
t_is "$(count_named pg/main/dump/postgres)" $((before_pg + 1)) "postgres, after it, is dumped"
t_is "$(count_named pg/main/globals)" $((before_glob + 1)) "and the globals"

# the same fake, exiting 0, does make snapshots: the counting above can see them
cat >"$fake/pg_dump" <<'EOF'
#!/bin/sh
printf 'PGDMP'
head -c 300000 /dev/zero
exit 0
EOF
before=$(count_dumps)
BUNKER_PG_BIN=$fake t_rc 0 "pg dump with a pg_dump that exits 0 succeeds" \
	bkp pg dump --dbname "$(pitr_conninfo)"
t_true "and adds dump snapshots" test "$(count_dumps)" -gt "$before"

# A pg_dump that writes nothing for --stall-timeout seconds is stopped and counts as
# failed: here it waits for a lock another session holds on one of app's tables
# (without the timeout it would wait the minute that session holds it). The others are
# still dumped.
pg_psql -d app >/dev/null 2>&1 <<'EOF' &
begin;
lock table s1.texts in access exclusive mode;
select pg_sleep(60);
EOF
locker=$!
for _ in $(seq 100); do
	[ "$(pg_psql -d app -c "select count(*) from pg_locks where granted and
		mode = 'AccessExclusiveLock' and relation = 's1.texts'::regclass")" = 1 ] && break
	sleep 0.1
done
before_app=$(count_named pg/main/dump/app)
before_pg=$(count_named pg/main/dump/postgres)
before_glob=$(count_named pg/main/globals)
t_rc 1 "pg dump --stall-timeout 2 with app's table locked by another session exits 1" \
	bkp pg dump --dbname "$(pitr_conninfo)" --stall-timeout 2
t_is "$(head -n 1 "$ERR")" "pg_dump: terminated by user" \
	"pg_dump, stopped with SIGTERM, says so" || diag "$(cat "$ERR")"
stall_line() {
	[ "$(wc -l <"$ERR")" = 2 ] && tail -n 1 "$ERR" | grep -q "^bunker: dump: 1 of [0-9]* dumps failed ('app'); the others were saved: pg_dump wrote nothing for 2 s (stall timeout): it was stopped (it writes nothing until it holds every table's lock: another session's lock, or a catalog that slow; --stall-timeout sets the limit)$"
}
t_true "then bunker, in one line naming the database and the stall" stall_line || diag "$(cat "$ERR")"
t_is "$(count_named pg/main/dump/app)" "$before_app" "no dump of app is added"
t_is "$(count_named pg/main/dump/postgres)" $((before_pg + 1)) "postgres is dumped"
t_is "$(count_named pg/main/globals)" $((before_glob + 1)) "and the globals"
t_is "$(pgrep -c -f "pg_dump .*dbname='app'")" 0 "the stalled pg_dump is not left running"
# nor its session on the server, waiting for the lock and holding those it had
# (SIGKILL left it there: pg_dump cancels its query on SIGTERM)
for _ in $(seq 50); do
	waiting=$(pg_sql "select count(*) from pg_stat_activity where application_name = 'pg_dump'")
	[ "$waiting" = 0 ] && break
	sleep 0.1
done
t_is "$waiting" 0 "nor its session on the server"
# Waits until app's pg_dump waits for the table's lock.
wait_dump_locked() {
	for _ in $(seq 100); do
		[ "$(pg_sql "select count(*) from pg_stat_activity where application_name = 'pg_dump'
			and datname = 'app' and wait_event_type = 'Lock'")" = 1 ] && return
		sleep 0.1
	done
}
# bunker itself stopped (SIGTERM: a service stopped, a kill) while a pg_dump waits
# for that lock: the pg_dump is stopped too, and its session on the server ends (it
# was left running, waiting and holding its locks, with no stall timeout left to
# stop it: found by review)
before_app=$(count_named pg/main/dump/app)
bkp pg dump --dbname "$(pitr_conninfo)" --stall-timeout 77 >/dev/null 2>&1 &
bunker_job=$!
wait_dump_locked
pkill -TERM -u postgres -f "^$BUNKER .* --stall-timeout 77\$"
wait "$bunker_job"
t_is "$?" 143 "bunker pg dump stopped by SIGTERM while pg_dump waits for a lock"
for _ in $(seq 50); do
	left=$(pgrep -c -f "pg_dump .*dbname='app'")
	waiting=$(pg_sql "select count(*) from pg_stat_activity where application_name = 'pg_dump'")
	[ "$left$waiting" = 00 ] && break
	sleep 0.1
done
t_is "$left" 0 "... leaves no pg_dump running"
t_is "$waiting" 0 "... nor its session on the server"
t_is "$(count_named pg/main/dump/app)" "$before_app" "... and adds no dump of app"
# Started with SIGTERM blocked (exec keeps the mask) and killed (SIGKILL): its
# pg_dump, which kept SIGTERM blocked, went on waiting for the lock (pg_dump sets
# its own handler, so an ignored SIGTERM does not stay ignored there; a blocked
# one stays blocked)
pg_as_server perl -e 'use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGTERM)) or die;
	exec @ARGV or die' "$BUNKER" -q --repo "$REPO" \
	--key-file "$KEY" pg dump --dbname "$(pitr_conninfo)" --stall-timeout 78 >/dev/null 2>&1 &
bunker_job=$!
wait_dump_locked
pkill -KILL -u postgres -f "^$BUNKER .* --stall-timeout 78\$"
wait "$bunker_job"
for _ in $(seq 50); do
	left=$(pgrep -c -f "pg_dump .*dbname='app'")
	[ "$left" = 0 ] && break
	sleep 0.1
done
t_is "$left" 0 "bunker started with SIGTERM blocked, killed while pg_dump waits: no pg_dump left"
pkill -KILL -f "pg_dump .*dbname='app'"
pg_sql "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(60)%'
	and pid <> pg_backend_pid()" >/dev/null
wait "$locker"
# pg_dumpall stalled (a fake that answers --version, then waits silently): the
# globals fail, named, with the stall's own words (not pg_dump's lock advice)
slow=$T/slowbin
mkdir "$slow"
chmod 755 "$slow"
ln -s "$PG_BIN/pg_dump" "$slow/pg_dump"
cat >"$slow/pg_dumpall" <<EOF
#!/bin/sh
case "\$*" in *--version*) exec '$PG_BIN/pg_dumpall' --version ;; esac
exec sleep 60
EOF
chmod 755 "$slow/pg_dumpall"
BUNKER_PG_BIN=$slow t_rc 1 "pg dump with pg_dumpall silent past --stall-timeout 1 exits 1" \
	bkp pg dump --dbname "$(pitr_conninfo)" --stall-timeout 1
t_true "naming the globals and the stall" grep -q "failed (the globals); the others were saved: pg_dumpall wrote nothing for 1 s (stall timeout): it was stopped (--stall-timeout sets the limit)$" "$ERR" ||
	diag "$(cat "$ERR")"
for secs in x -1 86401 ""; do
	t_rc 2 "--stall-timeout '$secs' is refused: 0 to 86400 s" \
		bkp pg dump --dbname "$(pitr_conninfo)" --stall-timeout "$secs"
	t_true "... naming the option" grep -q "^bunker: --stall-timeout: '$secs' is not a number of seconds (0..86400)" "$ERR"
done

# An error of the repository's (not a pg_dump's) stops at once: a copy of the
# repository that the server's user can only read (owned by root) fails the first
# dump's write, and no further pg_dump runs.
cat >"$fake/pg_dump" <<EOF
#!/bin/sh
[ "\$1" = --version ] || echo ran >>'$SRV/ro-runs' # (bunker checks its version first)
exec '$PG_BIN/pg_dump' "\$@"
EOF
cp -a "$REPO" "$T/ro-repo"
chown -R root:root "$T/ro-repo"
chmod -R a+rX,go-w "$T/ro-repo"
BUNKER_PG_BIN=$fake t_rc 1 "pg dump into a repository it cannot write exits 1" \
	pg_as_server "$BUNKER" -q --repo "$T/ro-repo" --key-file "$KEY" pg dump --dbname "$(pitr_conninfo)"
t_true "naming the database and what it could not write, in one line" \
	sh -c "test \$(wc -l <'$ERR') = 1 && grep -q '^bunker: dump: database ' '$ERR'" ||
	diag "$(cat "$ERR")"
t_is "$(wc -l <"$SRV/ro-runs" 2>/dev/null)" 1 "after one pg_dump: the others are not run"
# ... and it names them, and the globals (found by a helper's exploration: a full
# disk stopped it without saying which were not attempted)
n_left=$(($(pg_sql "select count(*) from pg_database where datallowconn and datconnlimit <> -2
	and datname <> 'template0'") - 1))
named=$(sed -n "s/.*; not attempted: \('.*'\), the globals$/\1/p" "$ERR" | grep -o "', '" | wc -l)
t_is "$((named + 1))" "$n_left" "... naming the $n_left databases it did not attempt, and the globals" ||
	diag "$(cat "$ERR")"
rm -rf "$T/ro-repo"
# ... and the pg_dump still running then is stopped, not left behind: this one
# ignores SIGPIPE, and after its output waits (--stall-timeout: a guard)
cat >"$fake/pg_dump" <<EOF
#!/bin/sh
[ "\$1" = --version ] && exec '$PG_BIN/pg_dump' --version
trap '' PIPE
head -c 41943040 /dev/urandom
exec sleep 61
EOF
cp -a "$REPO" "$T/ro-repo"
chown -R root:root "$T/ro-repo"
chmod -R a+rX,go-w "$T/ro-repo"
BUNKER_PG_BIN=$fake t_rc 1 "pg dump into a repository it cannot write, its pg_dump still running, exits 1" \
	pg_as_server "$BUNKER" -q --repo "$T/ro-repo" --key-file "$KEY" pg dump \
	--dbname "$(pitr_conninfo)" --stall-timeout 30
left=
for _ in $(seq 10); do # (the orphan, if any, needs a moment to exec sleep)
	left=$(pgrep -u postgres -f '^sleep 61$') && break
	sleep 0.1
done
t_is "$left" "" "... and that pg_dump is stopped"
[ -n "$left" ] && kill $left
rm -rf "$T/ro-repo"
# An error of the repository's while the globals are written fails the command too,
# naming them: pg_dumpall here makes the repository read-only first.
cp -a "$REPO" "$T/ro-repo"
rm -f "$fake/pg_dump" "$fake/pg_dumpall"
ln -s "$PG_BIN/pg_dump" "$fake/pg_dump"
cat >"$fake/pg_dumpall" <<EOF
#!/bin/sh
[ "\$1" = --version ] && exec '$PG_BIN/pg_dumpall' --version
chmod -R a-w '$T/ro-repo'
exec '$PG_BIN/pg_dumpall' "\$@"
EOF
chmod 755 "$fake/pg_dumpall"
t_rc 1 "pg dump whose globals cannot be written exits 1" \
	pg_as_server env BUNKER_PG_BIN="$fake" "$BUNKER" -q --repo "$T/ro-repo" --key-file "$KEY" \
	pg dump --dbname "$(pitr_conninfo)"
t_true "naming the globals, in one line" \
	sh -c "test \$(wc -l <'$ERR') = 1 && grep -q '^bunker: dump: the globals: ' '$ERR'" ||
	diag "$(cat "$ERR")"
rm -rf "$T/ro-repo"

# A password in --dbname reaches pg_dump and pg_dumpall through PGPASSWORD, never
# their command lines, which every local user can read (ps, /proc/PID/cmdline);
# and bunker's own command line (their parent's) no longer shows it while it runs.
for p in pg_dump pg_dumpall; do
	rm -f "$fake/$p"
	cat >"$fake/$p" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>'$SRV/args'
printf '%s\n' "\${PGPASSWORD:-none}" >>'$SRV/env'
tr '\\0' ' ' </proc/\$PPID/cmdline >>'$SRV/parent'; echo >>'$SRV/parent'
exec '$PG_BIN/$p' "\$@"
EOF
	chmod 755 "$fake/$p"
done
BUNKER_PG_BIN=$fake t_rc 0 "pg dump with a password in --dbname" \
	bkp pg dump --dbname "$(pitr_conninfo) password=s3cr3t-pw"
t_true "pg_dump and pg_dumpall both ran" grep -q -- --globals-only "$SRV/args"
t_true "no command line holds the password" sh -c "! grep -q s3cr3t '$SRV/args'" ||
	diag "$(cat "$SRV/args")"
t_is "$(sort -u "$SRV/env")" s3cr3t-pw "every one had it in PGPASSWORD"
t_true "bunker's command line still names the server while the dumps run" \
	sh -c "test -s '$SRV/parent' && ! grep -v 'pg dump --dbname .*host=' '$SRV/parent'"
t_true "but no longer holds the password" sh -c "! grep -q s3cr3t '$SRV/parent'" ||
	diag "$(cat "$SRV/parent")"
# TCP keepalives (pg/conninfo.h): each pg_dump and pg_dumpall is asked for them,
# unless --dbname sets its own
# (counted: a database name with a line break spreads its arguments over two lines)
ka="keepalives_interval='10' keepalives_count='6'"
t_is "$(grep -c "keepalives_idle='60' $ka" "$SRV/args")" "$(grep -c -- --dbname "$SRV/args")" \
	"each pg_dump and pg_dumpall is given bunker's TCP keepalives" || diag "$(cat "$SRV/args")"
: >"$SRV/args"
BUNKER_PG_BIN=$fake t_rc 0 "pg dump with keepalives_idle=300 in --dbname" \
	bkp pg dump --dbname "$(pitr_conninfo) keepalives_idle=300"
t_is "$(grep -c "keepalives_idle='300' .*$ka" "$SRV/args")" "$(grep -c -- --dbname "$SRV/args")" \
	"... which every one is given, with bunker's other two" || diag "$(cat "$SRV/args")"
t_true "... and not bunker's 60 s" sh -c "! grep -q \"keepalives_idle='60'\" '$SRV/args'"
# A service's settings (pg_service.conf) count as the string's: pg_dump reads them too.
printf '[ka]\nhost=%s\nport=%s\nuser=postgres\nkeepalives_idle=200\n' "$PG_SOCKDIR" "$PGPORT" \
	>"$T/services"
chmod 644 "$T/services"
: >"$SRV/args"
PGSERVICEFILE=$T/services BUNKER_PG_BIN=$fake t_rc 0 \
	"pg dump --dbname service=ka, a service that sets keepalives_idle=200" \
	bkp pg dump --dbname "service=ka"
t_is "$(grep -c "service='ka'" "$SRV/args") $(grep -c "$ka" "$SRV/args")" \
	"$(grep -c -- --dbname "$SRV/args") $(grep -c -- --dbname "$SRV/args")" \
	"... every program is given the service, with bunker's other two" || diag "$(cat "$SRV/args")"
t_true "... and not bunker's 60 s, which would override the service's 200" \
	sh -c "! grep -q \"keepalives_idle='60'\" '$SRV/args'"

# --dbname may be a bare database name, as libpq takes it (the server from PGHOST
# and PGPORT): the password check must not refuse it, and the dumps take their
# databases' names in its place.
t_rc 0 "pg dump --dbname postgres (a bare name)" \
	env PGHOST="$PG_SOCKDIR" PGPORT="$PGPORT" "$(command -v runuser)" -u postgres -- \
	"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg dump --dbname postgres
# (with a file the server leaves out of a base backup: its WARNING is passed on)
pg_as_server ln -s /etc/hostname "$PG_DATA/a-symlink"
t_rc 0 "pg basebackup --dbname postgres (a bare name)" \
	env PGHOST="$PG_SOCKDIR" PGPORT="$PGPORT" "$(command -v runuser)" -u postgres -- \
	"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg basebackup --dbname postgres --fast-checkpoint
t_true "passing on the server's warning about the file it skipped" \
	grep -q '^bunker: warning: server: skipping special file "./a-symlink"' "$ERR" || diag "$(cat "$ERR")"
t_is "$(grep -c 'skipping special file "./a-symlink"' "$ERR")" 1 \
	"... once (the server sends it for each of its two walks of the directory)"
# and not its NOTICEs: this server does not archive, so it says that WAL archiving is
# not enabled (bunker's own warning names the WAL the repository lacks)
t_true "but not the server's NOTICE" sh -c "! grep -q 'archiving is not enabled' '$ERR'" ||
	diag "$(cat "$ERR")"
t_true "bunker's warning names the WAL missing instead" grep -q 'which is not in this repository' "$ERR" ||
	diag "$(cat "$ERR")"
rm -f "$PG_DATA/a-symlink"
# A base backup given by id is restored only as its own cluster's: another cluster's
# WAL checks would not be its own.
b_main=$(bkp snapshots --json --name pg/main/base | grep -o '"id":"[0-9a-f]*"' | tail -n 1 | cut -d'"' -f4)
bkp --cluster copy pg basebackup --dbname "$(pitr_conninfo)" --fast-checkpoint >/dev/null 2>&1
t_rc 2 "pg restore of cluster main's base backup as cluster copy is refused" \
	bkp --cluster copy pg restore "$b_main" --target "$T/r-copy"
t_true "naming both" grep -q "is pg/main/base, not a base backup of cluster 'copy'" "$ERR" ||
	diag "$(cat "$ERR")"

# Started with SIGCHLD ignored (a disposition exec keeps: a supervisor, a script's
# parent that set it), bunker still learns how each pg_dump ended (every dump
# failed, "wait for pg_dump: No child processes": found by review)
before_app=$(count_named pg/main/dump/app)
t_rc 0 "pg dump started with SIGCHLD ignored" \
	pg_as_server perl -e '$SIG{CHLD} = "IGNORE"; exec @ARGV or die' \
	"$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg dump --dbname "$(pitr_conninfo)" ||
	diag "$(cat "$ERR")"
t_is "$(count_named pg/main/dump/app)" $((before_app + 1)) "... and dumps app"

# A client encoding set in the environment (GB18030 holds every character, so each
# pg_dump works in it) does not change the names of the databases listed: "café db"
# came back in GB18030's bytes, and its pg_dump found no such database
before_cafe=$(count_named "pg/main/dump/café db")
t_rc 0 "pg dump with PGCLIENTENCODING=GB18030" \
	pg_as_server env PGCLIENTENCODING=GB18030 "$BUNKER" -q --repo "$REPO" --key-file "$KEY" \
	pg dump --dbname "$(pitr_conninfo)" || diag "$(cat "$ERR")"
t_is "$(count_named "pg/main/dump/café db")" $((before_cafe + 1)) "... dumps \"café db\" under its name"

# The databases are listed with no search_path, as pg_dump and pg_dumpall list
# (CVE-2018-1058): the owner of the database --dbname names, putting a schema of
# its own first, made a pg_database there that shows only its database, and the
# others were left out without a word
pg_sql "create role tenant login" >/dev/null
pg_sql "create database tenant_db owner tenant" >/dev/null
pg_psql -U tenant -d tenant_db -c "create schema sly" \
	-c "create view sly.pg_database as select * from pg_catalog.pg_database where datname = 'tenant_db'" \
	-c "alter database tenant_db set search_path = sly, pg_catalog" >/dev/null
before_app=$(count_named pg/main/dump/app)
t_rc 0 "pg dump --dbname naming a database whose owner set a search_path" \
	bkp pg dump --dbname "host=$PG_SOCKDIR port=$PGPORT user=postgres dbname=tenant_db" ||
	diag "$(cat "$ERR")"
t_is "$(count_named pg/main/dump/app)" $((before_app + 1)) "... still dumps app"
pg_sql "drop database tenant_db" >/dev/null

# A connection string libpq rejects is a usage error before anything runs.
t_rc 2 "pg dump with a malformed --dbname exits 2" bkp pg dump --dbname "host=x = y"
t_true "naming the option, in one line" sh -c \
	"test \$(wc -l <'$ERR') = 1 && grep -q '^bunker: --dbname: bad connection string' '$ERR'"

# sslpassword has no environment variable: pg_dump would get it on its command line
before=$(bkp snapshots | wc -l)
t_rc 2 "pg dump with sslpassword in --dbname exits 2" \
	bkp pg dump --dbname "$(pitr_conninfo) sslpassword=k3y-s3cr3t"
t_is "$(cat "$ERR")" "bunker: dump: sslpassword in the connection string would be on each pg_dump's command line, which every local user can read: give a client key without a passphrase, readable by this user only" \
	"... saying why, in one line"
t_is "$(bkp snapshots | wc -l)" "$before" "... and saves nothing"

# A database whose name holds control characters (the server allows any but NUL):
# dumped under its exact name, printed escaped
evil_db=$(printf 'evil\033]0;pwned\007db')
pg_sql "create database \"$evil_db\"" >/dev/null
pg_psql -d "$evil_db" -c "create table t (x text); insert into t values ('evil row')" >/dev/null
t_rc 0 "pg dump of a server with a database named with control characters" \
	bkp pg dump --dbname "$(pitr_conninfo)"
t_true "... prints no control character" bash -c "! LC_ALL=C grep -q -P '[\\x00-\\x08\\x0b-\\x1f\\x7f]' '$OUT'"
t_true "... and names it escaped" grep -q -F 'pg/main/dump/evil\x1b]0;pwned\x07db' "$OUT"
t_rc 0 "pg info" bkp pg info
t_true "... prints no control character" bash -c "! LC_ALL=C grep -q -P '[\\x00-\\x08\\x0b-\\x1f\\x7f]' '$OUT'"
t_true "... and lists that dump escaped" grep -q -F 'pg/main/dump/evil\x1b]0;pwned\x07db' "$OUT"
pg_sql "create database evil_restored" >/dev/null
bkp cat latest --name "pg/main/dump/$evil_db" | "$PG_BIN/pg_restore" --exit-on-error -d evil_restored 2>"$T/pgr3.log"
t_is "$?" 0 "its dump, by its exact name, restores" || diag "$(head -n 5 "$T/pgr3.log")"
t_is "$(pg_psql -d evil_restored -c "select x from t")" "evil row" "with its row"
# pg_dump's own messages are escaped as bunker's are: it names a database it may not
# connect to in its error (they reached the terminal as they were: a name with
# escapes forged a line and hid bunker's). The same role may not read the system
# identifier: the dumps go on, without the check that the cluster is this server,
# and a warning says so (it was skipped without a word)
pg_sql "revoke connect on database \"$evil_db\" from public" >/dev/null
pg_sql "revoke execute on function pg_control_system() from public" >/dev/null
t_rc 1 "pg dump as a role that may not connect to it fails" \
	bkp pg dump --dbname "$(pitr_conninfo) user=noperm"
t_true "... prints no control character" bash -c "! LC_ALL=C grep -q -P '[\\x00-\\x08\\x0b-\\x1f\\x7f]' '$ERR'"
t_true "... and pg_dump's line names it escaped" \
	grep -q -F 'permission denied for database "evil\x1b]0;pwned\x07db"' "$ERR" || diag "$(cat "$ERR")"
t_true "... and warns that the server's system identifier is not known" grep -q -F \
	"bunker: warning: the dumps are saved under cluster 'main' without checking that it is this server: its system identifier cannot be read: ERROR:  permission denied for function pg_control_system" \
	"$ERR" || diag "$(cat "$ERR")"
pg_sql "grant execute on function pg_control_system() to public" >/dev/null
pg_sql "grant connect on database \"$evil_db\" to public" >/dev/null

# ---- a server that asks for a password ----
# hba_first LINE...: pg_hba.conf with these lines before lib-pg.sh's (trust for
# everything), reloaded; hba_first alone puts lib-pg.sh's back
hba_orig=$T/pg_hba.orig
cp "$PG_DATA/pg_hba.conf" "$hba_orig"
hba_first() {
	{ printf '%s\n' "$@"; cat "$hba_orig"; } | pg_as_server tee "$PG_DATA/pg_hba.conf" >/dev/null
	PGHOST=$PG_SOCKDIR pg_reload # (as lib-pg.sh's lines were: the socket's stay trust)
}
# in_tty CMD...: CMD as the server's user in a terminal of its own (script: a pty,
# where pg_dump would prompt on /dev/tty and wait), stopped after 20 s (exit 124)
in_tty() { pg_as_server timeout 20 script -qec "$(printf '%q ' "$@")" /dev/null; }
# on a terminal, the progress line (every 4 MiB) names the dump it counts (it gave
# MB alone)
pg_sql "create database sizable" >/dev/null
pg_psql -d sizable -c "create table t as select g, md5(g::text) m from generate_series(1, 200000) g" \
	>/dev/null
in_tty "$BUNKER" --repo "$REPO" --key-file "$KEY" pg dump --dbname "$(pitr_conninfo)" >"$T/tty.out" 2>&1
t_true "on a terminal, pg dump's progress line names the dump" \
	grep -aq $'\rpg/main/dump/sizable: [0-9.]* MB' "$T/tty.out" ||
	diag "$(tr '\r' '\n' <"$T/tty.out" | grep -a MB/s | tail -n 5)"
pg_sql "drop database sizable" >/dev/null
pg_sql "create role pwuser superuser login password 'pw-s3cr3t'" >/dev/null
pg_sql "create database pwdb" >/dev/null
pg_sql "create database solodb" >/dev/null
pw_ci="host=127.0.0.1 port=$PGPORT user=pwuser dbname=postgres"
# A password asked for one database only: the others are listed and dumped without,
# and pg_dump of that one fails at once (--no-password) instead of prompting on the
# terminal until the stall timeout (the test's timeout: exit 124)
hba_first "host pwdb all 127.0.0.1/32 scram-sha-256"
before=$(count_named pg/main/dump/pwdb)
before_app=$(count_named pg/main/dump/app)
t_rc 1 "pg dump in a terminal, pwdb's password asked and none given: exit 1 at once" \
	in_tty "$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg dump --dbname "$pw_ci"
t_true "... pg_dump saying that no password was given" grep -q 'fe_sendauth: no password supplied' \
	"$OUT" || diag "$(cat "$OUT")"
t_true "... and bunker naming the database" grep -q "^bunker: dump: 1 of [0-9]* dumps failed ('pwdb')" \
	"$OUT" || diag "$(cat "$OUT")"
t_is "$(count_named pg/main/dump/pwdb)" "$before" "... saving no dump of pwdb"
t_is "$(count_named pg/main/dump/app)" $((before_app + 1)) "... but the others"
t_rc 0 "pg dump with the password in --dbname" \
	in_tty "$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg dump --dbname "$pw_ci password=pw-s3cr3t"
t_is "$(count_named pg/main/dump/pwdb)" $((before + 1)) "... dumps pwdb"
t_rc 0 "pg dump with the password in PGPASSWORD" \
	in_tty env PGPASSWORD=pw-s3cr3t "$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg dump --dbname "$pw_ci"
t_is "$(count_named pg/main/dump/pwdb)" $((before + 2)) "... dumps pwdb"
# Every connection asking: bunker's own, listing the databases, fails first (libpq
# never prompts), naming why
hba_first "host all all 127.0.0.1/32 scram-sha-256"
before=$(bkp snapshots | wc -l)
t_rc 1 "pg dump in a terminal, every password asked and none given: exit 1" \
	in_tty "$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg dump --dbname "$pw_ci"
t_true "... saying that no password was given" grep -q \
	'^bunker: dump: connect: .*fe_sendauth: no password supplied' "$OUT" || diag "$(cat "$OUT")"
t_is "$(bkp snapshots | wc -l)" "$before" "... and saves nothing"
t_rc 0 "with the password in --dbname" \
	in_tty "$BUNKER" -q --repo "$REPO" --key-file "$KEY" pg dump --dbname "$pw_ci password=pw-s3cr3t"

# The globals are read through the database --dbname names (pg_dumpall's -l), not
# postgres, which the role here may not connect to (pg_dumpall's own choice, postgres
# then template1, failed both: "the globals" were among the dumps that failed)
hba_first "host postgres pwuser 127.0.0.1/32 reject" "host template1 pwuser 127.0.0.1/32 reject"
# (a database named with '=' too, which pg_dumpall's -l would read as a connection
# string: found by review, its globals failed with 'invalid connection option')
pg_sql 'create database "solo=db"' >/dev/null
for solo_ci in "host=127.0.0.1 port=$PGPORT user=pwuser dbname=solodb" \
	"postgresql://pwuser@127.0.0.1:$PGPORT/solodb" \
	"host=127.0.0.1 port=$PGPORT user=pwuser dbname='solo=db'" \
	"postgresql://pwuser@127.0.0.1:$PGPORT/solo%3Ddb"; do
	before=$(count_named pg/main/globals)
	t_rc 1 "pg dump --dbname '$solo_ci', the role refused postgres and template1" \
		bkp pg dump --dbname "$solo_ci"
	t_true "... fails their dumps only" grep -q "^bunker: dump: 2 of [0-9]* dumps failed ('postgres', 'template1'); the others were saved" \
		"$ERR" || diag "$(cat "$ERR")"
	t_is "$(count_named pg/main/globals)" $((before + 1)) "... and saves the globals, read through the database it names"
done
hba_first
pg_sql "drop database pwdb" >/dev/null
pg_sql "drop database solodb" >/dev/null
pg_sql 'drop database "solo=db"' >/dev/null

t_rc 0 "bunker check" bkp check

done_testing
