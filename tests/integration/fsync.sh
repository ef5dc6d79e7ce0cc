#!/bin/bash
# fsync.sh: a disk whose fsync fails (io-fault.c: its dirty pages may be lost) at each
# step of a backup's commit (DESIGN invariant 1): the pack's fsync, its directory's
# (and data/'s for a new bucket), the index commit's, the snapshot record's and its
# directory's. Each such backup fails cleanly (exit 1, one error line), leaves no
# snapshot record (but the last: see there), and nothing it could not make durable is
# named as complete: check finds at most unindexed packs (never an indexed pack that
# is missing), and the earlier snapshot still restores. A backup without the fault
# then works.
. "$SRCDIR/tests/integration/lib.sh"
it_init fsync

if [ ! -f "${IO_FAULT_LIB:-}" ]; then
	echo "1..0 # SKIP io-fault library not built (IO_FAULT_LIB)"
	exit 0
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

new_repo "$T/repo" || { echo "Bail out! init failed"; exit 1; }
R=$BUNKER_REPO

records() { find "$R/snapshots" -type f | wc -l; }
packs() { find "$R/data" -type f | sort; }
mkdir -p "$T/in/first"
gen_file "$T/in/first/a.bin" 1 3000000

# ---- data/ itself, when a pack's bucket data/xx/ is new (none is yet) ----
t_rc 1 "the fsync of data/ for a new bucket fails: the backup fails (exit 1)" \
	env LD_PRELOAD="$IO_FAULT_LIB" IO_FAULT=fsync IO_FAULT_PATH="$R/data\$" \
	"$BUNKER" -q backup "$T/in/first"
t_one_line_error "... with one error line"
t_true "... naming the fsync" grep -q "fsync directory $R/data: Input/output error" "$ERR"
t_is "$(records)" 0 "... and leaves no snapshot record"

bk backup --json "$T/in/first" >"$T/first.json"
t_is "$?" 0 "a first backup"
first=$(snap_id_of "$T/first.json")

# failing_backup PATH DIR DESC: back up DIR while every fsync of a path holding PATH
# fails; it must fail cleanly and leave no record.
failing_backup() {
	local path=$1 dir=$2 desc=$3 before
	before=$(records)
	t_rc 1 "$desc: the backup fails (exit 1)" env LD_PRELOAD="$IO_FAULT_LIB" IO_FAULT=fsync \
		IO_FAULT_PATH="$path" "$BUNKER" -q backup "$dir"
	t_one_line_error "... with one error line"
	t_true "... naming the I/O error" grep -q "Input/output error" "$ERR" || diag "$(cat "$ERR")"
	t_is "$(records)" "$before" "... and leaves no snapshot record"
	t_check_tolerant "... check --read-data finds nothing but unindexed packs" --read-data
}

# ---- the pack's own fsync (of its temp file, before it is linked into data/) ----
mkdir -p "$T/in/pack"
gen_file "$T/in/pack/b.bin" 2 3000000
before=$(packs)
failing_backup "$R/tmp/pack.tmp." "$T/in/pack" "the pack's fsync fails"
t_is "$(packs)" "$before" "... and no pack was placed in data/"

# ---- the pack's directory, once it is linked into data/xx/ ----
# (the buckets exist, so the directory synced is the pack's own, not data/ for a
# new bucket)
for i in $(seq 0 255); do mkdir -p "$R/data/$(printf %02x "$i")"; done
# data/ is synced once by each process even so: a bucket there may be one whose
# maker died before it synced data/ (found by a mutation audit: nothing synced it)
mkdir -p "$T/in/again"
gen_file "$T/in/again/e.bin" 5 3000000
failing_backup "$R/data\$" "$T/in/again" "the fsync of data/ fails, its buckets all there"
mkdir -p "$T/in/dir"
gen_file "$T/in/dir/c.bin" 3 3000000
failing_backup "$R/data/" "$T/in/dir" "the fsync of the pack's directory fails"

# ---- the index commit (LMDB syncs its data file before the meta page) ----
mkdir -p "$T/in/index"
gen_file "$T/in/index/d.bin" 4 3000000
before=$(packs)
failing_backup "$R/index/" "$T/in/index" "the index commit's fsync fails"
t_is "$(packs)" "$before" "... and the pack it could not index is taken back"

# ---- the record's fsync (its temp file in tmp/); the data is all stored already ----
before=$(packs)
failing_backup "$R/tmp/" "$T/in/first" "the snapshot record's fsync fails"
t_is "$(packs)" "$before" "... (a backup of stored data: no new pack)"

# ---- the record's directory, once the record is linked into snapshots/ ----
# The record is then in place, like one whose writer was killed before it could say
# so: everything it references is durable, so it may stay, and it restores.
before=$(records)
t_rc 1 "the fsync of the snapshots directory fails: the backup fails (exit 1)" \
	env LD_PRELOAD="$IO_FAULT_LIB" IO_FAULT=fsync IO_FAULT_PATH="$R/snapshots" \
	"$BUNKER" -q backup "$T/in/first"
t_one_line_error "... with one error line"
t_check_tolerant "... check --read-data finds nothing but unindexed packs" --read-data
bad=0
for id in $(bk snapshots --json | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4); do
	rm -rf "$T/out"
	bk restore "$id" --target "$T/out" 2>/dev/null || bad=$((bad + 1))
done
t_is "$bad" 0 "... and every snapshot left restores"

# ---- root writing into another user's repository ----
# What root stores there is given to the repository's owner (postgres, whose
# archive_command and restore_command read it): that change must be durable with
# the object, not made after its last sync, where a power cut just after the
# backup's success could leave a record of root's that the owner cannot read
# (found by review: a record was chowned once in place; io-fault.c's unsynced mode
# names a chown that no sync followed).
if [ "$(id -u)" = 0 ]; then
	O=$T/owned
	mkdir -p "$O/in"
	chown nobody: "$O"
	chmod a+x "$T"
	gen_file "$O/in/f.bin" 6 300000
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$BUNKER" -q --repo "$O/repo" \
		--new-key-file "$O/key" init >/dev/null
	t_rc 0 "as root into a repository of nobody's: a backup succeeds" \
		env LD_PRELOAD="$IO_FAULT_LIB" IO_FAULT=unsynced IO_FAULT_PATH="$O/repo" \
		"$BUNKER" -q --repo "$O/repo" --key-file "$O/key" backup "$O/in"
	t_is "$(grep "^io-fault" "$ERR")" "" "... and everything it changed is durable (chowns included)"
	t_is "$(find "$O/repo" ! -user nobody | head -n 3)" "" "... and all it wrote is nobody's"
	# an index that a command of root's makes anew (after it was removed), one that
	# writes nothing else: its files are given to nobody durably too, or nobody's
	# writers find an index of root's after a power cut, and fail
	rm -rf "$O/repo/index"
	t_rc 0 "as root, with the index removed: snapshots (which makes a new index)" \
		env LD_PRELOAD="$IO_FAULT_LIB" IO_FAULT=unsynced IO_FAULT_PATH="$O/repo" \
		"$BUNKER" -q --repo "$O/repo" --key-file "$O/key" snapshots
	t_is "$(grep "^io-fault" "$ERR")" "" "... and the new index's owner is durable"
	t_is "$(find "$O/repo" ! -user nobody | head -n 3)" "" "... and it is nobody's"
else
	for i in 1 2 3 4 5 6; do
		ok "# SKIP root writing into another user's repository: the tests do not run as root"
	done
fi

# ---- a new key file (key add --new-key-file) ----
# The key file is the only copy of its secret: one a power cut could take back must
# not be reported as made, nor its slot added (found by a mutation audit: its fsync
# was skipped and nothing noticed)
slots_before=$(bk key list | wc -l)
t_rc 1 "the fsync of a new key file fails: key add fails (exit 1)" \
	env LD_PRELOAD="$IO_FAULT_LIB" IO_FAULT=fsync IO_FAULT_PATH="$T/key-new" \
	"$BUNKER" -q key add --new-key-file "$T/key-new"
t_one_line_error "... with one error line"
t_true "... naming the I/O error" grep -q "Input/output error" "$ERR"
t_true "... and leaves no key file" test ! -e "$T/key-new"
t_is "$(bk key list | wc -l)" "$slots_before" "... and adds no key slot"

# ---- and without a fault ----
bk backup --json "$T/in/index" >"$T/after.json"
t_is "$?" 0 "a backup without the fault succeeds"
rm -rf "$T/out"
t_true "... and restores" bk restore "$(snap_id_of "$T/after.json")" --target "$T/out"
t_cmp "$T/in/index/d.bin" "$T/out/index/d.bin" "... byte-exact"
rm -rf "$T/out"
t_true "the first snapshot still restores" bk restore "$first" --target "$T/out"
t_cmp "$T/in/first/a.bin" "$T/out/first/a.bin" "... byte-exact"
t_is "$(find "$R/tmp" -type f | wc -l)" 0 "no temp file is left in tmp/"

done_testing
