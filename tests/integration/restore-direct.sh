#!/bin/bash
# restore-direct.sh: restored files are written with O_DIRECT in whole 4 KiB blocks
# (store/restorer.c); the file's last partial block travels from batch to batch and
# from file to file. Files of every size around the block and chunk edges, runs of
# zeros inside and at the end, an all-zero file and many small files in a row come
# back byte-exact and sparse where they were zero; and the same through the
# fallbacks, forced by an LD_PRELOAD library (io-fault.c): where the file system
# takes O_DIRECT, every write of a restore is direct and in whole aligned blocks
# (a misaligned one would quietly fall back to the page cache); a file system that
# refuses O_DIRECT at open, one that refuses a direct write midway, short writes,
# one that makes no unnamed file (O_TMPFILE).
# A write that fails (EIO) fails the restore with one line, exit 1, and leaves
# no temporary file, and every file under its own name whole; also when the
# failed write is not followed by the write of a partial last block. A failed
# ftruncate or utimensat fails the restore the same way, with nothing under the
# file's name; a failed syncfs at the end fails it too. A restore killed while it
# writes a file leaves no part of it behind. A block whose only
# non-zero byte is its last, and a file of one repeated non-zero byte, are data,
# not holes. A symbolic link at a directory's name in the target is not followed,
# by a whole restore or one of an --include.
. "$SRCDIR/tests/integration/lib.sh"
it_init restore-direct

export BUNKER_REPO=$T/repo BUNKER_PASSWORD_FILE=$T/pw
# small chunks: many batches a file, chunk ends at every offset modulo 4 KiB
"$BUNKER" init --chunk-size 16K >/dev/null || { echo "Bail out! init failed"; exit 1; }
S=$T/in/src
mkdir -p "$S/small"
i=0
for sz in 1 100 4095 4096 4097 8191 8192 8193 12288 65535 65536 65537 524287 524288 524289 \
	1048577 3145745; do
	i=$((i + 1))
	gen_file "$S/f$i-$sz" "$i" "$sz"
done
: >"$S/empty"
{ gen_bytes 1 5000; head -c 16384 /dev/zero; gen_bytes 2 3000; head -c 5000 /dev/zero; } >"$S/zeros-inside"
{ gen_bytes 3 8192; head -c 4096 /dev/zero; } >"$S/zero-block-tail"
{ gen_bytes 4 8192; head -c 100 /dev/zero; } >"$S/zero-bytes-tail"
head -c 1000000 /dev/zero >"$S/all-zero"
{ gen_bytes 7 8192; head -c 4095 /dev/zero; printf '\001'; gen_bytes 8 5000; } >"$S/last-byte-set"
head -c 20000 /dev/zero | tr '\0' '\377' >"$S/all-ff"
{ gen_bytes 9 4096; head -c 8192 /dev/zero; gen_bytes 10 8192; } >"$S/hole-then-blocks"
{ gen_bytes 5 700000; head -c 1048576 /dev/zero; gen_bytes 6 1234567; head -c 3 /dev/zero; } >"$S/mixed"
for j in $(seq 1 150); do gen_file "$S/small/s$j" "$((100 + j))" "$((j * 37 % 9000))"; done
t_true "backup" bk backup "$S"

t_true "restore" bk restore latest --target "$T/out"
t_same_tree "$S" "$T/out/src" "every file comes back byte-exact with its metadata"
blocks=$(stat -c %b "$T/out/src/all-zero")
t_is "$blocks" 0 "an all-zero file is a hole (st_blocks $blocks)"
mixed=$(($(stat -c %b "$T/out/src/mixed") * 512))
t_true "a MiB of zeros inside a file is a hole ($mixed bytes allocated of $(file_size "$S/mixed"))" \
	test "$mixed" -lt 2200000

# A directory's name in the target held by a symbolic link (put there by another
# user who can write the target): the restore does not follow it and writes nothing
# where it leads (found by a mutation audit: without O_NOFOLLOW on the directory's
# open, all of src/ was restored into the link's target and nothing noticed)
mkdir -p "$T/out-link" "$T/elsewhere"
ln -s "$T/elsewhere" "$T/out-link/src"
t_rc 1 "a restore over a symbolic link at a directory's name fails (exit 1)" \
	bk restore latest --target "$T/out-link"
t_one_line_error "... with one error line"
t_true "... naming the link" grep -q "out-link/src is a symbolic link where the snapshot has a directory: not followed" "$ERR"
t_is "$(find "$T/elsewhere" -mindepth 1 | wc -l)" 0 "... and writes nothing where the link leads"
t_true "... which is still the link" test -L "$T/out-link/src"
# ... and so with --include, which made the directories above the included entry
# following links (found by a helper's exploration: src/small went where it led)
t_rc 1 "--include src/small over that link fails too (exit 1)" \
	bk restore latest --target "$T/out-link" --include src/small
t_one_line_error "... with one error line"
t_true "... naming the link" grep -q "out-link/src is a symbolic link where the snapshot has a directory: not followed" "$ERR"
t_is "$(find "$T/elsewhere" -mindepth 1 | wc -l)" 0 "... and writes nothing where the link leads"
t_true "--include src/small restores into a target without the link" \
	bk restore latest --target "$T/out-inc" --include src/small
t_same_tree "$S/small" "$T/out-inc/src/small" "... byte-exact"

SHIM=${IO_FAULT_LIB:-}
if [ -z "$SHIM" ] || [ ! -f "$SHIM" ]; then
	skip "io-fault library not built (IO_FAULT_LIB)"
else
	# ASan wants to come first; the shim only wraps libc calls
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
	if dd if=/dev/zero of="$T/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
		out=$T/out-strict
		t_true "restore where every write must be direct and aligned" env LD_PRELOAD="$SHIM" \
			IO_FAULT=strict IO_FAULT_PATH="$out" "$BUNKER" -q restore latest --target "$out"
		t_same_tree "$S" "$out/src" "strict: every file byte-exact"
	else
		skip "the file system under $T takes no O_DIRECT"
	fi
	for mode in open-direct write-direct short no-tmpfile; do
		out=$T/out-$mode
		t_true "restore where $mode" env LD_PRELOAD="$SHIM" IO_FAULT=$mode IO_FAULT_PATH="$out" \
			"$BUNKER" -q restore latest --target "$out"
		t_same_tree "$S" "$out/src" "$mode: every file byte-exact"
	done
	out=$T/out-eio
	t_rc 1 "a restore whose writes fail exits 1" env LD_PRELOAD="$SHIM" IO_FAULT=eio \
		IO_FAULT_PATH="$out" "$BUNKER" -q restore latest --target "$out"
	t_one_line_error "the failed write is one line"
	t_true "it names the error" grep -q "Input/output error" "$ERR"
	left=$(find "$out" -name '*.bunker-restore.*' | wc -l)
	t_is "$left" 0 "no temporary file is left"
	wrong=0 restored=0
	while IFS= read -r f; do
		restored=$((restored + 1))
		cmp -s "$f" "$S/${f#"$out/src/"}" || wrong=$((wrong + 1))
	done < <(find "$out" -type f)
	t_is "$wrong" 0 "every file under its name is whole ($restored restored before the failure)"
	t_true "the restore stopped at the failure ($restored files)" test "$restored" -lt 20
	# whole blocks only: the write at 12288 fails, and no partial last block is
	# written at the end that would fail as well
	out=$T/out-eio-whole
	t_rc 1 "a failed write in a file of whole blocks fails the restore" env LD_PRELOAD="$SHIM" \
		IO_FAULT=eio IO_FAULT_PATH="$out" "$BUNKER" -q restore latest --target "$out" \
		--include src/hole-then-blocks
	t_true "... and leaves nothing under its name" test ! -e "$out/src/hole-then-blocks"
	for mode in truncate times; do
		out=$T/out-$mode
		t_rc 1 "a restore whose $mode fails exits 1" env LD_PRELOAD="$SHIM" IO_FAULT=$mode \
			IO_FAULT_PATH="$out" "$BUNKER" -q restore latest --target "$out"
		t_one_line_error "$mode: the failure is one line"
		t_is "$(find "$out" -type f | wc -l)" 0 "$mode: no file, temporary or under its name, is left"
	done
	# Killed while it writes a file: no part of it is left, under any name (a file
	# is written unnamed, O_TMPFILE, and named only once whole; it was written under
	# a temporary name, which a kill left behind)
	out=$T/out-kill
	t_rc 137 "a restore killed (SIGKILL) in the middle of a file" env LD_PRELOAD="$SHIM" \
		IO_FAULT=kill-write IO_FAULT_PATH="$out" "$BUNKER" -q restore latest --target "$out"
	t_is "$(find "$out" -type f | wc -l)" 0 "... leaves no file behind" ||
		diag "$(find "$out" -type f)"
	# Without /proc (a chroot, say), where an unnamed file cannot be linked by its
	# descriptor: written under its temporary name, as without O_TMPFILE
	# (not in the sanitizer build: AddressSanitizer reads its options and
	# LeakSanitizer its threads in /proc, and fails without it)
	if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null && ! ldd "$BUNKER" | grep -q libasan; then
		out=$T/out-noproc
		t_true "restore without /proc mounted" unshare -m sh -c \
			'mount -t tmpfs none /proc && exec "$@"' sh "$BUNKER" -q restore latest --target "$out"
		t_same_tree "$S" "$out/src" "without /proc: every file byte-exact"
	else
		skip "restore without /proc: not root, no mount namespace here, or a sanitizer build"
	fi
	# As root into a directory another user can write: that user gives a file's
	# temporary name, once it is linked there, to a link to a file of root's; root's
	# chmod, chown and times went to the file it wrote, never through the link, and
	# the restore fails, leaving nothing under the file's name (found by review:
	# they were set by name, and chmod followed the link)
	if [ "$(id -u)" = 0 ]; then
		out=$T/out-swap
		printf 'secret\n' >"$T/victim" && chmod 600 "$T/victim"
		t_rc 1 "as root, a file's temporary name given to a link before its rename: fails" \
			env LD_PRELOAD="$SHIM" IO_FAULT=swap-file IO_FAULT_PATH="$out/src/.f3-" \
			IO_FAULT_SWAP_TO="$T/victim" "$BUNKER" -q restore latest --target "$out"
		t_true "... naming it" grep -q "src/f3-4095: its temporary file was replaced" "$ERR" ||
			diag "$(cat "$ERR")"
		t_is "$(stat -c '%a %U' "$T/victim")/$(cat "$T/victim")" "600 root/secret" \
			"... the file the link leads to is untouched"
		t_true "... and nothing is under the file's name" test ! -e "$out/src/f3-4095"
	else
		skip "as root, a file's temporary name swapped for a link: not root"
	fi
	out=$T/out-syncfs
	t_rc 1 "a restore whose final syncfs fails exits 1" env LD_PRELOAD="$SHIM" IO_FAULT=syncfs \
		IO_FAULT_PATH="$out" "$BUNKER" -q restore latest --target "$out"
	t_one_line_error "syncfs: the failure is one line"
fi
done_testing
