# tests/integration/lib.sh: shared helpers for bunker's integration scripts.
#
# Source it from bash:   . "$SRCDIR/tests/integration/lib.sh"
#
# Environment: BUNKER (the binary; default $SRCDIR/build/tools/bunker), SRCDIR (the
# source tree; default two levels above this file), BUNKER_TEST_QUICK=1 to scale the
# heavy tests down (for the ASan run).
#
# TAP
#   ok DESC / not_ok DESC [DIAG...]   emit one result (honours $TODO, see below)
#   skip DESC                         emit a TAP skip
#   t_true DESC CMD...                ok when CMD exits 0 (its stderr is shown if not)
#   t_is GOT WANT DESC                ok when the strings are equal
#   t_rc WANT DESC CMD...             run CMD, ok when its exit code is WANT; keeps
#                                     its stdout in $OUT, stderr in $ERR, code in $RC
#   t_cmp A B DESC                    ok when files A and B have the same bytes
#   t_same_tree A B DESC              ok when directories A and B hold the same tree
#                                     (types, modes, owners, sizes, mtimes to the ns,
#                                     symlink targets, file bytes)
#   t_manifest WANT DIR DESC          ok when tree_manifest DIR equals the file WANT
#   t_one_line_error DESC             ok when $ERR is exactly one non-empty line
#                                     starting with "bunker: "
#   diag MSG...                       a "# " comment line
#   TODO=reason                       results emitted while set carry "# TODO reason"
#   done_testing                      print the plan "1..N" (call it last)
#
# Work space
#   it_init NAME                      make $T (a temp dir under /tmp), removed on exit
#   at_exit CMD                       run CMD (eval'd) at exit, before $T is removed
#   new_repo DIR                      init a repository in DIR with the passphrase in
#                                     $T/pw; exports BUNKER_REPO, BUNKER_PASSWORD_FILE
#   bk ARGS...                        "$BUNKER" -q ARGS
#   snap_id_of FILE                   the full snapshot id printed by backup --json
#
# Data
#   gen_bytes SEED SIZE               SIZE deterministic pseudo-random bytes from SEED
#                                     (AES-128-CTR keystream via openssl) on stdout
#   gen_file FILE SEED SIZE           the same into FILE
#   flip_byte FILE OFFSET             XOR the byte at OFFSET with 0xff in place
#   file_size FILE                    size in bytes
#   tree_manifest DIR                 the sorted description t_same_tree compares
#                                     (MANIFEST_CACHE=FILE reuses hashes of unchanged
#                                     source files)
#   unindexed_only FILE               check's output FILE reports only unindexed packs
#   t_check_tolerant DESC [ARGS]      ok when bk check ARGS exits 0 or reports only
#                                     unindexed packs (sets CHECK_RC, CHECK_OUT)

set -u

: "${SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${BUNKER:=$SRCDIR/build/tools/bunker}"
case ${BUNKER_TEST_QUICK:-0} in
'' | 0) QUICK=0 ;;
*) QUICK=1 ;;
esac
export SRCDIR BUNKER
unset BUNKER_REPO BUNKER_KEY_FILE BUNKER_PASSWORD_FILE BUNKER_PASSWORD_COMMAND

# ---- TAP ----

_tap_n=0
_tap_failed=0
TODO=

diag() {
	local line
	printf '%s\n' "$@" | while IFS= read -r line; do printf '# %s\n' "$line"; done
}

_tap_emit() { # STATUS DESC
	local st=$1 desc=$2 dir=
	_tap_n=$((_tap_n + 1))
	desc=${desc//#/\\#}
	[ -n "$TODO" ] && dir=" # TODO $TODO"
	if [ "$st" = ok ]; then
		printf 'ok %d - %s%s\n' "$_tap_n" "$desc" "$dir"
	else
		printf 'not ok %d - %s%s\n' "$_tap_n" "$desc" "$dir"
		[ -n "$TODO" ] || _tap_failed=$((_tap_failed + 1))
	fi
}

ok() { _tap_emit ok "$1"; }

skip() { # DESC: a TAP skip (counted as passed by TAP consumers)
	_tap_n=$((_tap_n + 1))
	printf 'ok %d # SKIP %s\n' "$_tap_n" "$1"
}

not_ok() {
	local desc=$1
	shift
	_tap_emit notok "$desc"
	[ $# -gt 0 ] && diag "$@"
	return 0
}

t_true() {
	local desc=$1 err
	shift
	err=$("$@" 2>&1 >/dev/null)
	local rc=$?
	if [ $rc = 0 ]; then
		ok "$desc"
	else
		not_ok "$desc" "command: $*" "exit $rc" "$(printf '%s\n' "$err" | head -n 20)"
	fi
	return $rc
}

t_is() {
	if [ "$1" = "$2" ]; then
		ok "$3"
	else
		not_ok "$3" "got:  $(printf '%s' "$1" | head -c 2000)" "want: $(printf '%s' "$2" | head -c 2000)"
		return 1
	fi
}

OUT=/dev/null
ERR=/dev/null
RC=0
_t_out_n=0
t_rc() {
	local want=$1 desc=$2
	shift 2
	_t_out_n=$((_t_out_n + 1))
	OUT=$T/.out.$_t_out_n
	ERR=$T/.err.$_t_out_n
	"$@" >"$OUT" 2>"$ERR"
	RC=$?
	if [ "$RC" = "$want" ]; then
		ok "$desc"
	else
		not_ok "$desc" "command: $*" "exit $RC, want $want" "stderr: $(head -c 2000 "$ERR")"
		return 1
	fi
}

t_cmp() {
	if cmp -s -- "$1" "$2"; then
		ok "$3"
	else
		not_ok "$3" "$(cmp -- "$1" "$2" 2>&1 | head -n 3)" \
			"sizes: $(file_size "$1" 2>/dev/null) vs $(file_size "$2" 2>/dev/null)"
		return 1
	fi
}

t_one_line_error() {
	local lines
	lines=$(wc -l <"$ERR")
	if [ "$lines" = 1 ] && grep -q '^bunker: ..*' "$ERR"; then
		ok "$1"
	else
		not_ok "$1" "stderr has $lines lines:" "$(head -n 10 "$ERR")"
		return 1
	fi
}

done_testing() {
	printf '1..%d\n' "$_tap_n"
	[ "$_tap_failed" = 0 ] || diag "$_tap_failed of $_tap_n failed"
	return 0
}

# ---- work space ----

_at_exit=()
at_exit() { _at_exit+=("$1"); }

_it_cleanup() {
	local i
	for ((i = ${#_at_exit[@]} - 1; i >= 0; i--)); do
		eval "${_at_exit[$i]}" >/dev/null 2>&1 || true
	done
	if [ -n "${T:-}" ] && [ -d "$T" ]; then
		rm -rf -- "$T"
	fi
}

it_init() {
	T=$(mktemp -d "/tmp/bunker-it-$1.XXXXXX") || {
		echo "Bail out! cannot make a temp dir"
		exit 1
	}
	trap _it_cleanup EXIT
	trap 'exit 130' INT TERM
	if [ ! -x "$BUNKER" ]; then
		echo "Bail out! no bunker binary at $BUNKER"
		exit 1
	fi
	printf 'correct horse battery staple\n' >"$T/pw"
	chmod 600 "$T/pw"
}

bk() { "$BUNKER" -q "$@"; }

new_repo() {
	export BUNKER_REPO=$1 BUNKER_PASSWORD_FILE=$T/pw
	"$BUNKER" init >/dev/null
}

snap_id_of() {
	sed -n 's/.*"snapshot":"\([0-9a-f]\{64\}\)".*/\1/p' "$1" | head -n 1
}

# ---- data ----

gen_bytes() {
	local key
	key=$(printf '%032x' "$1")
	openssl enc -aes-128-ctr -K "$key" -iv 00000000000000000000000000000000 -nosalt \
		</dev/zero 2>/dev/null | head -c "$2"
}

gen_file() { gen_bytes "$2" "$3" >"$1"; }

file_size() { stat -c %s -- "$1"; }

flip_byte() {
	local file=$1 off=$2 old new
	old=$(od -An -tu1 -j "$off" -N1 -- "$file" | tr -d ' ')
	[ -n "$old" ] || return 1
	new=$((old ^ 0xff))
	printf "\\x$(printf %02x "$new")" | dd of="$file" bs=1 seek="$off" count=1 conv=notrunc status=none
}

# sha256 of FILE; with MANIFEST_CACHE=FILE set, reuses the hash of a file whose path,
# inode, size, mtime and ctime are unchanged (only for source trees a test controls).
_file_sha() {
	local path=$1 st=$2 key sum
	if [ -z "${MANIFEST_CACHE:-}" ]; then
		sha256sum <"$path" | cut -c1-64
		return
	fi
	key="$PWD/$path|$st|$(stat -c '%d %i %.9Z' -- "$path")"
	sum=$(KEY=$key awk 'substr($0, 66) == ENVIRON["KEY"] { print substr($0, 1, 64); exit }' \
		"$MANIFEST_CACHE" 2>/dev/null)
	if [ -z "$sum" ]; then
		sum=$(sha256sum <"$path" | cut -c1-64)
		printf '%s %s\n' "$sum" "$key" >>"$MANIFEST_CACHE"
	fi
	printf '%s\n' "$sum"
}

# One line per entry below DIR (not DIR itself):
#   f MODE UID GID SIZE MTIME PATH SHA256
#   d MODE UID GID MTIME PATH
#   l UID GID MTIME PATH -> TARGET
# then any other type with its mode. Sorted by path.
tree_manifest() {
	local dir=$1
	(
		cd "$dir" || exit 1
		find . -mindepth 1 -printf '%y\t%P\n' | LC_ALL=C sort -t "$(printf '\t')" -k2 |
			while IFS=$'\t' read -r type path; do
				case $type in
				f) st=$(stat -c '%a %u %g %s %.9Y' -- "$path")
					printf 'f %s %s %s\n' "$st" "$path" "$(_file_sha "$path" "$st")" ;;
				d) printf 'd %s %s\n' "$(stat -c '%a %u %g %.9Y' -- "$path")" "$path" ;;
				l) printf 'l %s %s -> %s\n' "$(stat -c '%u %g %.9Y' -- "$path")" "$path" \
					"$(readlink -- "$path")" ;;
				*) printf '%s %s %s\n' "$type" "$(stat -c '%a %u %g %.9Y' -- "$path")" "$path" ;;
				esac
			done
	)
}

t_same_tree() {
	local a=$1 b=$2 desc=$3 ma mb
	ma=$(tree_manifest "$a")
	mb=$(tree_manifest "$b")
	if [ -z "$ma" ]; then
		not_ok "$desc" "empty source tree $a"
		return 1
	fi
	if [ "$ma" = "$mb" ]; then
		ok "$desc"
	else
		not_ok "$desc" "$(diff <(printf '%s\n' "$ma") <(printf '%s\n' "$mb") | head -n 20)"
		return 1
	fi
}

t_manifest() { # WANTFILE DIR DESC: DIR's tree_manifest equals the one saved in WANTFILE
	local d
	d=$(diff "$1" <(tree_manifest "$2" 2>&1) | head -n 12)
	if [ -z "$d" ]; then
		ok "$3"
	else
		not_ok "$3" "$d"
		return 1
	fi
}

# A pack renamed into data/ whose index commit never happened is what a crash may
# leave behind (DESIGN invariant 1). unindexed_only FILE: FILE (check's output) has
# no problem line other than such packs and their blobs.
unindexed_only() {
	! grep '^error: ' "$1" |
		grep -q -v -E 'is not in the index( \(run .bunker repair index.\))?$'
}
# t_check_tolerant DESC [CHECK-ARGS]: run bk check; ok when it exits 0, or exits 5
# reporting nothing but unindexed packs. Sets CHECK_RC and CHECK_OUT.
t_check_tolerant() {
	local desc=$1
	shift
	CHECK_OUT=$T/.check.$((_tap_n + 1))
	bk check "$@" >"$CHECK_OUT" 2>&1
	CHECK_RC=$?
	if [ $CHECK_RC = 0 ] || { [ $CHECK_RC = 5 ] && unindexed_only "$CHECK_OUT"; }; then
		ok "$desc"
		[ $CHECK_RC = 0 ] || diag "(check exit 5: only unindexed packs: $(grep -c 'is not in the index (run' "$CHECK_OUT"))"
	else
		not_ok "$desc" "check exit $CHECK_RC" "$(grep -v 'is not in the index' "$CHECK_OUT" | head -n 5)"
		return 1
	fi
}
