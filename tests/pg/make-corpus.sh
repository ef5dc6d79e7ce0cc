#!/bin/bash
# tests/pg/make-corpus.sh: regenerates the seed corpora of the pg fuzz targets in
# tests/pg/corpus/ (not run by the build; commit what it writes). Needs GNU tar and
# PostgreSQL 15 (for a real WAL page header, through tests/integration/lib-pg.sh).
# Reproducers found by fuzzing (crash-*) are added by hand and kept. The corpora of
# pg-walseg and pg-walrecord are written by their targets (see their headers).
set -eu
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$here/corpus
tmp=$(mktemp -d)
trap 'pg_stop 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$out/pg-tar" "$out/pg-wal" "$out/pg-replmsg"
find "$out/pg-tar" "$out/pg-wal" "$out/pg-replmsg" -type f ! -name 'crash-*' -delete

# seed FILE PREFIX-BYTES-AS-PRINTF SOURCE: prefix + source bytes
seed() {
	{ printf "$2"; cat "$3"; } >"$1"
}

# ---- tar ----
t=$tmp/tree
mkdir -p "$t/global" "$t/base/1" "$t/$(printf 'u%.0s' $(seq 80))/$(printf 'v%.0s' $(seq 80))"
printf '15\n' >"$t/PG_VERSION"
head -c 1000 /dev/urandom >"$t/global/pg_control"
: >"$t/base/1/empty"
printf 'split\n' >"$t/$(printf 'u%.0s' $(seq 80))/$(printf 'v%.0s' $(seq 80))/w"
ln -s global/pg_control "$t/link"
ln "$t/PG_VERSION" "$t/hard"
long=$t/$(printf 'L%.0s' $(seq 150))
printf 'long\n' >"$long"
ln -s "/$(printf 'K%.0s' $(seq 150))" "$t/longlink"
tar --format=ustar -b1 --sort=name -cf "$tmp/ustar.tar" -C "$t" --exclude='LLL*' --exclude=longlink . 2>/dev/null
tar --format=gnu -b1 --sort=name -cf "$tmp/gnu.tar" -C "$t" .
tar --format=posix -b1 --sort=name -cf "$tmp/pax.tar" -C "$t" .
head -c -1024 "$tmp/ustar.tar" >"$tmp/pgstyle.tar"
head -c 1024 /dev/zero >"$tmp/empty.tar"
# ids past the octal fields (pax uid/gid keys; GNU base-256), a fractional and a
# negative mtime, a pax global header
tar --format=posix --owner=big:99999999 --group=big:88888888 --mtime=@1600000000.5 \
	--pax-option=globexthdr.name=g -b1 --sort=name -cf "$tmp/big-pax.tar" -C "$t" base 2>/dev/null
tar --format=gnu --owner=big:99999999 --group=big:88888888 --mtime=@-5 -b1 --sort=name \
	-cf "$tmp/big-gnu.tar" -C "$t" base 2>/dev/null
seed "$out/pg-tar/ustar-whole" '\377\001' "$tmp/ustar.tar"
seed "$out/pg-tar/ustar-bytewise" '\000\001' "$tmp/ustar.tar"
seed "$out/pg-tar/gnu-longnames" '\111\001' "$tmp/gnu.tar"
seed "$out/pg-tar/pax-longnames" '\003\001' "$tmp/pax.tar"
# byte 1 bit 1: the target sets the headers' checksums
seed "$out/pg-tar/gnu-longnames-sums" '\133\003' "$tmp/gnu.tar"
seed "$out/pg-tar/pax-longnames-sums" '\133\003' "$tmp/pax.tar"
seed "$out/pg-tar/pax-big-ids-fraction-mtime" '\005\001' "$tmp/big-pax.tar"
seed "$out/pg-tar/gnu-base256-negative-mtime" '\007\001' "$tmp/big-gnu.tar"
seed "$out/pg-tar/pg-style-no-trailer" '\022\000' "$tmp/pgstyle.tar"
seed "$out/pg-tar/empty-archive" '\001\001' "$tmp/empty.tar"
# a pax size key (GNU tar writes one only past 8 GiB), a pax path over the cap
python3 - "$tmp" <<'PY'
import io, sys, tarfile
def mk(name, ti, data):
    with tarfile.open(f"{sys.argv[1]}/{name}", "w", format=tarfile.PAX_FORMAT) as t:
        t.addfile(ti, io.BytesIO(data))
ti = tarfile.TarInfo("base/1/16384"); ti.size = 5
ti.pax_headers = {"size": "5", "uid": "26", "gid": "26"}
mk("pax-size.tar", ti, b"hello")
mk("pax-long.tar", tarfile.TarInfo("a/" * 2600 + "f"), b"")
PY
seed "$out/pg-tar/pax-size-key" '\011\001' "$tmp/pax-size.tar"
seed "$out/pg-tar/pax-path-too-long" '\013\001' "$tmp/pax-long.tar"
head -c 700 "$tmp/gnu.tar" >"$tmp/trunc.tar"
seed "$out/pg-tar/truncated-header" '\002\000' "$tmp/trunc.tar"

# ---- wal ----
. "$here/../integration/lib-pg.sh"
pg_start "$tmp/pg" >/dev/null
seg=$(pg_switch_wal)
head -c 8192 "$PG_DATA/pg_wal/$seg" >"$tmp/page"
head -c 32768 "$PG_DATA/pg_wal/$seg" >"$tmp/pages"
pg_stop
# mode 0 with name index 1 (000000010000000000000001) and without a name; four
# pages of records for the last-record walk
seed "$out/pg-wal/header-real-named" '\004' "$tmp/page"
seed "$out/pg-wal/header-real-unnamed" '\000' "$tmp/page"
seed "$out/pg-wal/records-real-unnamed" '\000' "$tmp/pages"
printf '\001%s' "$(printf '1\t0/3000000\tno recovery target specified\n\n2\t0/5000000\tbefore 2000-01-01 00:00:00+00\n')" >"$out/pg-wal/history-two"
printf '\001%s' "$(printf '1\t0/5000000\tx\n2\t0/3000000\ty\n')" >"$out/pg-wal/history-switch-point-decreasing"
printf '\015# comment\n1\t16/B374D848\tat restore point "x"\n' >"$out/pg-wal/history-file-tli-3"
printf '\002000000010000000200000003' >"$out/pg-wal/name-segment"
printf '\00200000001000000020000000A.partial' >"$out/pg-wal/name-partial"
printf '\0020000001F.history' >"$out/pg-wal/name-history"
printf '\002000000010000000000000002.00000028.backup' >"$out/pg-wal/name-backup"
printf '\00316/B374D848' >"$out/pg-wal/lsn"
printf '\003FFFFFFFF/FFFFFFFF' >"$out/pg-wal/lsn-max"

# ---- replication messages ----
printf 'w\000\000\000\000\003\000\000\000\000\000\000\000\003\000\100\000\000\000\000\000\000\000\000\001walbytes' >"$out/pg-replmsg/xlogdata"
printf 'w\000\000\000\000\003\000\000\000\000\000\000\000\003\000\100\000\000\000\000\000\000\000\000\001' >"$out/pg-replmsg/xlogdata-empty"
printf 'k\000\000\000\000\003\000\100\000\000\000\000\000\000\000\000\002\001' >"$out/pg-replmsg/keepalive"
printf 'k\000\000\000\000\003\000\100\000\000\000\000\000\000\000\000\002\002' >"$out/pg-replmsg/keepalive-bad-flag"
printf 'x' >"$out/pg-replmsg/unknown"
ls -l "$out"/*
