#!/bin/bash
# cli.sh: the command line's contract: exit codes (0 ok, 1 error, 2 usage, 3 not found,
# 4 wrong passphrase or key, 5 corruption), every way of giving a secret, key slots,
# snapshot resolution, JSON output, and errors on exactly one line of stderr.
. "$SRCDIR/tests/integration/lib.sh"
it_init cli

R=$T/repo
PW=$T/pw
printf 'wrong passphrase\n' >"$T/bad"
chmod 600 "$T/bad"
B() { "$BUNKER" -q --repo "$R" "$@"; }

t_rc 0 "init with --password-file" B --password-file "$PW" init
t_true "init says it created the repository" grep -q "created repository" "$OUT"
t_rc 1 "init on an existing repository fails (exit 1)" B --password-file "$PW" init
t_one_line_error "... with one error line"
t_rc 0 "... and the repository still opens" B --password-file "$PW" snapshots

# ---- passphrases: right and wrong, from every source ----
t_rc 0 "right passphrase via --password-file" B --password-file "$PW" check
t_rc 4 "wrong passphrase via --password-file exits 4" B --password-file "$T/bad" check
t_one_line_error "... one error line"
t_true "... that says the passphrase is wrong" grep -q -i 'wrong passphrase' "$ERR"
t_rc 0 "right passphrase via --password-command" B --password-command "cat '$PW'" check
t_rc 4 "wrong passphrase via --password-command exits 4" B --password-command 'echo nope' check
t_one_line_error "... one error line"
t_rc 0 "right passphrase via BUNKER_PASSWORD_FILE" env BUNKER_PASSWORD_FILE="$PW" "$BUNKER" -q --repo "$R" check
t_rc 4 "wrong passphrase via BUNKER_PASSWORD_FILE exits 4" env BUNKER_PASSWORD_FILE="$T/bad" "$BUNKER" -q --repo "$R" check
t_one_line_error "... one error line"
t_rc 0 "right passphrase via BUNKER_PASSWORD_COMMAND" env BUNKER_PASSWORD_COMMAND="cat '$PW'" "$BUNKER" -q --repo "$R" check
t_rc 4 "wrong passphrase via BUNKER_PASSWORD_COMMAND exits 4" env BUNKER_PASSWORD_COMMAND='echo nope' "$BUNKER" -q --repo "$R" check
t_rc 0 "BUNKER_REPO names the repository" env BUNKER_REPO="$R" BUNKER_PASSWORD_FILE="$PW" "$BUNKER" -q check
t_rc 0 "--password-file overrides a wrong BUNKER_PASSWORD_FILE" env BUNKER_PASSWORD_FILE="$T/bad" "$BUNKER" -q --repo "$R" --password-file "$PW" check
t_rc 0 "--password-file overrides BUNKER_PASSWORD_COMMAND" env BUNKER_PASSWORD_COMMAND='echo nope' "$BUNKER" -q --repo "$R" --password-file "$PW" check
t_rc 2 "--key-file and --password-file together: exit 2, not one silently" B --key-file "$T/bad" --password-file "$PW" check
t_one_line_error "... one error line"
t_rc 2 "two secret sources in the environment: exit 2" env BUNKER_PASSWORD_FILE="$PW" BUNKER_PASSWORD_COMMAND='echo nope' "$BUNKER" -q --repo "$R" check
printf 'correct horse battery staple' >"$T/pw-nonl"
chmod 600 "$T/pw-nonl"
t_rc 0 "a passphrase file without a trailing newline is the same passphrase" B --password-file "$T/pw-nonl" check
printf 'correct horse battery staple \n' >"$T/pw-space"
chmod 600 "$T/pw-space"
t_rc 4 "a trailing space is part of the passphrase (exit 4)" B --password-file "$T/pw-space" check
t_rc 3 "a password file that does not exist: exit 3" B --password-file "$T/missing-pw" check
t_one_line_error "... one error line"
: >"$T/empty-pw"
chmod 600 "$T/empty-pw"
rc_empty=$(B --password-file "$T/empty-pw" check >/dev/null 2>"$T/e.err"; echo $?)
if [ "$rc_empty" != 0 ] && [ "$rc_empty" != 4 ] && [ "$(wc -l <"$T/e.err")" = 1 ]; then
	ok "an empty password file is refused as such (exit $rc_empty, one line)"
else
	not_ok "an empty password file is refused as such" "exit $rc_empty: $(cat "$T/e.err")"
fi
t_rc 2 "a failing --password-command: exit 2" B --password-command 'exit 3' check
t_is "$(cat "$ERR")" "bunker: password command exited with 3" "... in one line giving its exit code (not a wait status)"
t_rc 2 "a --password-command killed by a signal: exit 2" B --password-command 'kill -9 $$' check
t_is "$(cat "$ERR")" "bunker: password command killed by signal 9" "... in one line naming the signal"
t_rc 2 "no secret and no terminal: exit 2" setsid "$BUNKER" -q --repo "$R" check </dev/null
t_one_line_error "... one error line"
# a FIFO as the secret's file: refused at once (its open waited for a writer for ever,
# found by review: an archive_command with one would hang the archiver)
mkfifo "$T/fifo-secret"
t_rc 1 "a FIFO as --password-file is refused, without waiting" timeout 20 "$BUNKER" -q --repo "$R" --password-file "$T/fifo-secret" check
t_is "$(cat "$ERR")" "bunker: password file $T/fifo-secret is not a regular file" "... in one line saying so"
t_rc 1 "a FIFO as --key-file is refused, without waiting" timeout 20 "$BUNKER" -q --repo "$R" --key-file "$T/fifo-secret" check
t_is "$(cat "$ERR")" "bunker: key file $T/fifo-secret is not a regular file" "... in one line saying so"
# a password file obeys a key file's rules (found by review: one others could read
# was read): mode 0600 or stricter, exit 1 as for a key file, and nothing written
cp -p "$PW" "$T/pw-loose"
chmod 0644 "$T/pw-loose"
t_rc 1 "a password file with mode 0644 is refused (exit 1)" B --password-file "$T/pw-loose" check
t_is "$(cat "$ERR")" "bunker: password file $T/pw-loose is readable by other users (mode 0644): chmod 600 it" \
	"... in one line saying why"
t_rc 1 "... by init, which creates nothing" "$BUNKER" -q --repo "$T/r-loose" --password-file "$T/pw-loose" init
t_true "... (no repository there)" test ! -e "$T/r-loose"
slots_before=$(ls "$R/keys")
t_rc 1 "... and as key add's --new-password-file" B --password-file "$PW" key add --new-password-file "$T/pw-loose"
t_is "$(cat "$ERR")" "bunker: password file $T/pw-loose is readable by other users (mode 0644): chmod 600 it" \
	"... saying so"
t_is "$(ls "$R/keys")" "$slots_before" "... which adds no key slot"
chmod 0640 "$T/pw-loose"
t_rc 1 "a password file with mode 0640 (group-readable) is refused too" B --password-file "$T/pw-loose" check
chmod 0600 "$T/pw-loose"
t_rc 0 "... and opens the repository once chmod 600" B --password-file "$T/pw-loose" check
ln -s "$PW" "$T/pw-link"
t_rc 1 "a symbolic link as --password-file is refused (exit 1), as for a key file" \
	B --password-file "$T/pw-link" check
t_is "$(cat "$ERR")" "bunker: password file $T/pw-link is a symbolic link (not followed)" "... in one line saying so"

# no secret ever appears in any output so far
if grep -l -F -e 'correct horse' -e 'nope' "$T"/.err.* "$T"/.out.* >"$T/leaks"; then
	not_ok "no passphrase is ever printed" "$(cat "$T/leaks")" "$(xargs grep -H -F -e "correct horse" -e nope <"$T/leaks" | head -n 5)"
else
	ok "no passphrase is ever printed"
fi

# ---- the repository ----
t_rc 3 "a repository that does not exist: exit 3" "$BUNKER" -q --repo "$T/no-such-repo" --password-file "$PW" snapshots
t_is "$(cat "$ERR")" "bunker: repository $T/no-such-repo: No such file or directory" \
	"... one error line, saying so"
mkdir "$T/not-a-repo"
t_rc 3 "a directory that is not a repository: exit 3" "$BUNKER" -q --repo "$T/not-a-repo" --password-file "$PW" snapshots
t_is "$(cat "$ERR")" "bunker: $T/not-a-repo is not a bunker repository (no config)" \
	"... one error line, saying so"
t_rc 2 "no repository given: exit 2" "$BUNKER" -q --password-file "$PW" snapshots
t_one_line_error "... one error line"

# ---- usage ----
t_rc 2 "unknown command: exit 2" B --password-file "$PW" frobnicate
t_one_line_error "... one error line"
t_true "... naming the command" grep -q frobnicate "$ERR"
t_rc 2 "unknown option: exit 2" B --password-file "$PW" --frobnicate snapshots
t_one_line_error "... one error line"
t_true "... naming the option" grep -q -e '--frobnicate' "$ERR"
t_rc 2 "unknown option after the command: exit 2" B --password-file "$PW" snapshots --frobnicate
t_one_line_error "... one error line"
t_rc 2 "an option missing its argument: exit 2" B --password-file "$PW" snapshots --name
t_one_line_error "... one error line"
t_is "$(cat "$ERR")" "bunker: option '--name' needs an argument (see 'bunker --help')" \
	"... saying so (it said 'unknown option')"
t_rc 128 "pg wal-fetch with an option missing its argument: exit 128" \
	B --password-file "$PW" pg wal-fetch 000000010000000000000002 "$T/z" --cluster
t_is "$(cat "$ERR")" "bunker: option '--cluster' needs an argument (see 'bunker --help')" \
	"... saying so"
t_rc 2 "an option given an argument it takes none of: exit 2" B --password-file "$PW" --json=yes snapshots
t_is "$(cat "$ERR")" "bunker: option '--json' takes no argument (see 'bunker --help')" \
	"... saying so"
t_rc 2 "an unknown short option in a group: exit 2" B --password-file "$PW" -q=2 snapshots
t_is "$(cat "$ERR")" "bunker: unknown option '-=' (see 'bunker --help')" \
	"... naming it (it named the program)"
# an option the command does not take is refused, not ignored (pg info exited 0)
t_rc 2 "an option the command does not take: exit 2" \
	B --password-file "$PW" pg info --target-time garbage --max-rate abc --dbname x
t_is "$(cat "$ERR")" "bunker: pg info does not take --target-time (see 'bunker --help')" \
	"... in one line naming the first"
t_rc 2 "check --json: exit 2" B --password-file "$PW" check --json
t_one_line_error "... one error line"
t_rc 2 "--cluster with a command that is not pg's: exit 2" B --password-file "$PW" --cluster x snapshots
t_one_line_error "... one error line"
t_rc 2 "key list --new-key-file: exit 2" B --password-file "$PW" key list --new-key-file "$T/k-unused"
t_true "... and makes no key file" test ! -e "$T/k-unused"
t_rc 128 "pg wal-fetch with an option it does not take: exit 128" \
	B --password-file "$PW" pg wal-fetch --dbname x 000000010000000000000002 "$T/z"
t_is "$(cat "$ERR")" "bunker: pg wal-fetch does not take --dbname (see 'bunker --help')" "... saying so"
t_rc 0 "the options every command takes still work (--password-command, -q, --json where read)" \
	B -q --password-command "cat '$PW'" stats --json
# a single-valued option given twice is refused, not the last one taken (pg restore
# restored to the second --target at the second --target-lsn)
t_rc 2 "pg restore --target A --target B: exit 2" B --password-file "$PW" pg restore \
	--target "$T/ta" --target "$T/tb" --target-lsn 0/1 --target-lsn 0/2
t_is "$(cat "$ERR")" "bunker: option '--target' given twice (see 'bunker --help')" \
	"... in one line naming it"
t_true "... and writes neither" test ! -e "$T/ta" -a ! -e "$T/tb"
t_rc 2 "--password-file twice: exit 2" B --password-file "$PW" --password-file "$T/bad" check
t_one_line_error "... one error line"
# an empty NAME or DEST is refused before anything is written (an empty DEST left a
# temporary file in the working directory)
mkdir "$T/cwd"
t_rc 128 "pg wal-fetch with an empty DEST: exit 128" \
	sh -c 'cd "$1" && shift && exec "$@"' - "$T/cwd" "$BUNKER" -q --repo "$R" --password-file "$PW" \
	pg wal-fetch 000000010000000000000002 ""
t_is "$(cat "$ERR")" "bunker: pg wal-fetch: DEST is empty (see 'bunker --help')" "... in one line saying so"
t_is "$(ls -A "$T/cwd")" "" "... leaving nothing in the working directory"
t_rc 128 "pg wal-fetch with an empty NAME: exit 128" B --password-file "$PW" pg wal-fetch "" "$T/z"
t_is "$(cat "$ERR")" "bunker: pg wal-fetch: NAME is empty (see 'bunker --help')" "... in one line saying so"
t_rc 2 "no command: exit 2" "$BUNKER"
t_rc 0 "--help exits 0" "$BUNKER" --help
t_true "... and prints the usage on stdout" grep -q '^usage: bunker' "$OUT"
t_rc 2 "backup without a path: exit 2" B --password-file "$PW" backup
t_one_line_error "... one error line"
t_rc 2 "backup --stdin without --name: exit 2" B --password-file "$PW" backup --stdin
t_one_line_error "... one error line"
t_rc 2 "restore without --target: exit 2" B --password-file "$PW" restore latest
t_one_line_error "... one error line"
t_rc 2 "init --chunk-size that is not a power of two: exit 2" "$BUNKER" -q --repo "$T/r2" --password-file "$PW" init --chunk-size 3000
t_one_line_error "... one error line"
t_is "$(test -e "$T/r2/config" && echo made || echo none)" none "... and no repository is made"
t_rc 3 "backup of a path that does not exist: exit 3" B --password-file "$PW" backup "$T/nothing-here"
t_one_line_error "... one error line"

# ---- snapshots, resolution, json ----
export BUNKER_PASSWORD_FILE=$PW
t_rc 0 "snapshots --json of an empty repository" B snapshots --json
t_is "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])))' "$OUT" 2>&1)" "[]" "... is an empty JSON array"

mkdir -p "$T/src"
ids=()
for i in 1 2 3; do
	printf 'version %d\n' "$i" >"$T/a$i"
	B backup --json --stdin --name "alpha" --tag "v$i" <"$T/a$i" >"$T/j"
	ids+=("$(snap_id_of "$T/j")")
	printf 'beta %d\n' "$i" | B backup --json --stdin --name beta --stdin-filename b.txt >"$T/j"
	bids+=("$(snap_id_of "$T/j")")
done
t_rc 0 "snapshots --json" B snapshots --json
t_rc 0 "... parses (python3 -m json.tool)" python3 -m json.tool "$OUT"
summary=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(len(d), sorted(set(s["name"] for s in d)), [s["tags"] for s in d if s["name"] == "alpha"],
      all(len(s["id"]) == 64 for s in d))
' "$T/.out.$_t_out_n" 2>&1)
t_is "$summary" "6 ['alpha', 'beta'] [['v1'], ['v2'], ['v3']] True" "... lists 6 snapshots with names, tags and ids, oldest first"
# output that cannot be written fails the command (found by a helper's exploration:
# each exited 0 into a full disk, its listing lost)
to_full() { "$@" >/dev/full; }
for cmd in "snapshots" "ls ${ids[0]}" "stats" "key list" "check"; do
	# shellcheck disable=SC2086 # (the command's words)
	t_rc 1 "$cmd into a full disk (/dev/full): exit 1" to_full B $cmd
	t_is "$(cat "$ERR")" "bunker: write standard output: No space left on device" "... one error line"
done
t_rc 0 "snapshots --name alpha --json" B snapshots --name alpha --json
t_is "$(python3 -c 'import json,sys; print(" ".join(s["id"] for s in json.load(open(sys.argv[1]))))' "$OUT")" \
	"${ids[*]}" "... lists exactly alpha's snapshots in order"
t_rc 0 "snapshots (text) lists every snapshot" B snapshots
t_is "$(grep -c . "$OUT")" 6 "... one line each"
weird='we"ird\name	tab'
printf 'x' | B backup --stdin --name "$weird" >/dev/null
t_is "$(B snapshots --json | python3 -c 'import json,sys; print([s["name"] for s in json.load(sys.stdin)][-1] == sys.argv[1])' "$weird" 2>&1)" \
	True "snapshots --json escapes quotes, backslashes and tabs in names"
# JSON is Unicode: a name's byte that is not UTF-8 (a database name from a
# SQL_ASCII server) is U+FFFD there, and the output stays UTF-8 (it was written raw)
printf 'x' | B backup --stdin --name "$(printf 'caf\351 \302\205 ok')" >/dev/null
t_is "$(B snapshots --json | python3 -c 'import json,sys
print(ascii([s["name"] for s in json.loads(sys.stdin.buffer.read().decode("utf-8"))][-1]))' 2>&1)" \
	"'caf\ufffd \x85 ok'" "snapshots --json is UTF-8: a byte of a name that is not is U+FFFD"

t_is "$(B cat latest --name alpha)" "version 3" "latest --name alpha is alpha's newest"
t_is "$(B cat latest --name beta)" "beta 3" "latest --name beta is beta's newest"
t_is "$(B cat latest)" "x" "latest without --name is the newest of all"
t_is "$(B cat "${ids[0]}")" "version 1" "a full id resolves"
t_is "$(B cat "${ids[1]:0:12}")" "version 2" "a 12-digit prefix resolves"
# the shortest prefix unique among our snapshots (4 digits almost surely)
for n in 4 5 6 7 8; do
	p=${ids[0]:0:$n}
	[ "$(B snapshots --json | grep -o "\"id\":\"$p" | wc -l)" = 1 ] && break
done
t_is "$(B cat "$p")" "version 1" "a unique $n-digit prefix resolves"
t_rc 0 "restore by an 8-digit prefix" B restore "${ids[2]:0:8}" --target "$T/rp"
t_is "$(cat "$T/rp/stdin" 2>&1)" "version 3" "restore by prefix restores that snapshot (stdin name 'stdin')"
# a stream is stored as a file of its writer's that no one else may read (a database
# dump, often): so it comes back (found by a mutation audit: 0644 for 0600 in
# bk_archive_fd passed every test)
t_is "$(stat -c '%a %u' "$T/rp/stdin" 2>&1)" "600 $(id -u)" "... as a file of mode 0600, this user's"
t_rc 0 "restore of beta" B restore "${bids[0]:0:10}" --target "$T/rb"
t_is "$(cat "$T/rb/b.txt" 2>&1)" "beta 1" "... under its --stdin-filename"
t_rc 2 "a 3-digit prefix is refused: exit 2" B cat "${ids[0]:0:3}"
t_one_line_error "... one error line"
# Two records under one prefix (a copy of ids[0]'s record under a name that differs
# only in its last digit: damaged, so it opens as nothing, but a record an id prefix
# names is a match): the prefix is ambiguous, exit 2, and neither is chosen silently
# (found by a mutation audit: with the ambiguity check gone, the prefix named
# whichever record was listed last, and no test failed)
twin=${ids[0]:0:63}$([ "${ids[0]:63:1}" = 0 ] && echo 1 || echo 0)
cp "$R/snapshots/${ids[0]}" "$R/snapshots/$twin"
t_rc 2 "a prefix that two records share is ambiguous: exit 2" \
	B restore "${ids[0]:0:12}" --target "$T/ambiguous"
t_one_line_error "... one error line"
t_true "... saying so" grep -q "prefix '${ids[0]:0:12}' is ambiguous" "$ERR"
t_is "$(test -e "$T/ambiguous" && find "$T/ambiguous" -type f | wc -l || echo 0)" 0 \
	"... and restores nothing"
rm "$R/snapshots/$twin"
absent=$(printf '%064d' 0)
for id in "${ids[@]}" "${bids[@]}"; do [ "${id:0:4}" = 0000 ] && absent=$(printf 'f%063d' 0); done
t_rc 3 "a snapshot id that does not exist: exit 3" B cat "$absent"
t_one_line_error "... one error line"
t_rc 3 "a prefix that matches nothing: exit 3" B restore "${absent:0:8}" --target "$T/nothing"
t_one_line_error "... one error line"
t_is "$(test -e "$T/nothing" && find "$T/nothing" -type f | wc -l || echo 0)" 0 "... and restores nothing"
t_rc 3 "latest --name of a name with no snapshot: exit 3" B cat latest --name gamma
t_one_line_error "... one error line"
t_rc 3 "ls of a snapshot that does not exist: exit 3" B ls "$absent"
t_rc 2 "something that is not an id: exit 2" B cat not-an-id
t_one_line_error "... one error line"
# cat without a PATH of a snapshot that is not one stream: the error names the
# snapshot 'latest' resolved to (found by review: 'bunker cat latest | pg_restore'
# where latest was a base backup said only 'snapshot holds 24 entries')
mkdir -p "$T/two"
printf a >"$T/two/a"
printf b >"$T/two/b"
B backup --json "$T/two" >"$T/j"
tid=$(snap_id_of "$T/j")
t_rc 2 "cat latest of a directory's snapshot without a PATH: exit 2" B cat latest
t_is "$(cat "$ERR")" "bunker: cat: snapshot ${tid:0:16} (files/two) is not a file: name the file to cat ('bunker ls' lists them)" \
	"... in one line naming the snapshot"
B backup --json "$T/two/a" "$T/two/b" >"$T/j"
tid=$(snap_id_of "$T/j")
t_rc 2 "cat latest of two files' snapshot without a PATH: exit 2" B cat latest
t_is "$(cat "$ERR")" "bunker: cat: snapshot ${tid:0:16} (files/a) holds 2 entries: name the file to cat ('bunker ls' lists them)" \
	"... in one line naming the snapshot"

# ---- key slots ----
S0=$(ls "$R/keys")
t_rc 0 "key list" B key list
t_is "$(grep -c . "$OUT")" 1 "... one slot"
t_true "... the passphrase slot by its id" grep -q "^$S0 .*passphrase" "$OUT"

printf 'second passphrase\n' >"$T/pw2"
chmod 600 "$T/pw2"
t_rc 0 "key add --new-password-file" B key add --new-password-file "$T/pw2"
S2=$(sed -n 's/^added key slot \([0-9a-f]\{16\}\)$/\1/p' "$OUT")
t_is "${#S2}" 16 "... prints the new slot id"
t_rc 0 "the new passphrase opens the repository" "$BUNKER" -q --repo "$R" --password-file "$T/pw2" cat latest --name alpha
t_is "$(cat "$OUT")" "version 3" "... and reads it"
t_rc 0 "the old passphrase still opens it" B check

t_rc 0 "key add --new-key-file" B key add --new-key-file "$T/key1"
S3=$(sed -n 's/^added key slot \([0-9a-f]\{16\}\)$/\1/p' "$OUT")
t_is "$(stat -c %a "$T/key1")" 600 "... creates the key file with mode 0600"
# repository files are 0660 and directories 2770 (setgid: what a group's member
# writes takes the repository's group), exactly, whatever the umask (docs/design.md:
# a group shares them), here with records, packs and key slots in it (found by a
# mutation audit: 0666 for an object put passed every test)
t_is "$(find "$R" \( \( -type f ! -perm 0660 \) -o \( -type d ! -perm 2770 \) \) -printf '%m %P\n')" "" \
	"every repository file is mode 0660 and every directory 2770"
t_rc 0 "the key file opens the repository" "$BUNKER" -q --repo "$R" --key-file "$T/key1" cat latest --name beta
t_is "$(cat "$OUT")" "beta 3" "... and reads it"
t_rc 0 "BUNKER_KEY_FILE opens it too" env -u BUNKER_PASSWORD_FILE BUNKER_KEY_FILE="$T/key1" "$BUNKER" -q --repo "$R" check
t_rc 1 "key add --new-key-file refuses to overwrite an existing file" B key add --new-key-file "$T/key1"
t_one_line_error "... one error line"
t_rc 0 "key list" B key list
t_is "$(grep -c . "$OUT")" 3 "... three slots"
t_true "... the key-file slot shown as such" grep -q "^$S3 .*key-file" "$OUT"

# a wrong key file: valid format, other key
( umask 077; openssl rand -hex 32 >"$T/key-other" )
t_rc 4 "a key file that opens no slot: exit 4" "$BUNKER" -q --repo "$R" --key-file "$T/key-other" check
t_one_line_error "... one error line"
t_true "... naming the repository and the key file" grep -qx \
	"bunker: $R: wrong key file $T/key-other" "$ERR"
t_rc 4 "... given by BUNKER_KEY_FILE: exit 4" env -u BUNKER_PASSWORD_FILE -u BUNKER_PASSWORD_COMMAND \
	BUNKER_KEY_FILE="$T/key-other" "$BUNKER" -q --repo "$R" check
t_true "... naming the key file too" grep -qx "bunker: $R: wrong key file $T/key-other" "$ERR"
( umask 077; printf 'this is not a key\n' >"$T/key-junk" )
t_rc 4 "a file that is not a key file: exit 4" "$BUNKER" -q --repo "$R" --key-file "$T/key-junk" check
t_one_line_error "... one error line"
t_rc 3 "a key file that does not exist: exit 3" "$BUNKER" -q --repo "$R" --key-file "$T/key-none" check
t_one_line_error "... one error line"
cp -p "$T/key1" "$T/key-loose"
chmod 0644 "$T/key-loose"
"$BUNKER" -q --repo "$R" --key-file "$T/key-loose" check >/dev/null 2>"$T/loose.err"
rc=$?
ERR=$T/loose.err
if [ $rc != 0 ]; then ok "a key file with mode 0644 is refused (exit $rc)"; else not_ok "a key file with mode 0644 is refused" "exit 0"; fi
t_one_line_error "... one error line"
t_true "... that says why (mode or permissions)" grep -q -i -E 'mode|permission|readable' "$ERR"
chmod 0640 "$T/key-loose"
t_rc 1 "a key file with mode 0640 (group-readable) is refused too" "$BUNKER" -q --repo "$R" --key-file "$T/key-loose" check
ln -s "$T/key1" "$T/key-link"
t_rc 1 "a symbolic link as --key-file is refused (exit 1)" "$BUNKER" -q --repo "$R" --key-file "$T/key-link" check
t_is "$(cat "$ERR")" "bunker: key file $T/key-link is a symbolic link (not followed)" "... in one line saying so"

# remove slots
t_rc 0 "key remove of the first passphrase's slot" B --password-file "$T/pw2" key remove "$S0"
t_rc 4 "the removed passphrase no longer opens the repository: exit 4" B --password-file "$PW" check
t_rc 0 "the second passphrase still does" B --password-file "$T/pw2" check
t_rc 3 "key remove of a slot that does not exist: exit 3" B --password-file "$T/pw2" key remove 0123456789abcdef
t_one_line_error "... one error line"
t_rc 0 "key remove of the key-file slot" B --password-file "$T/pw2" key remove "$S3"
t_rc 4 "the key file no longer opens the repository: exit 4" "$BUNKER" -q --repo "$R" --key-file "$T/key1" check
t_rc 1 "removing the last slot is refused (exit 1)" B --password-file "$T/pw2" key remove "$S2"
t_one_line_error "... one error line"
t_true "... and says it is the last" grep -q -i 'last' "$ERR"
t_rc 0 "... and the last slot still opens the repository" B --password-file "$T/pw2" cat latest --name alpha
t_is "$(cat "$OUT")" "version 3" "... with everything in it"
t_is "$(ls "$R/keys")" "$S2" "only the last slot is left in keys/"

# a repository made with a key file from the start
t_rc 0 "init --new-key-file" "$BUNKER" -q --repo "$T/rk" --new-key-file "$T/key-init" init
t_is "$(stat -c %a "$T/key-init" 2>&1)" 600 "... makes the key file 0600"
printf 'k\n' | "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-init" backup --stdin --name k >/dev/null
t_is "$("$BUNKER" -q --repo "$T/rk" --key-file "$T/key-init" cat latest 2>&1)" "k" "... and it opens that repository"
t_rc 4 "the other repository's key file does not: exit 4" "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-other" check
t_rc 4 "a passphrase does not open a key-file repository: exit 4" "$BUNKER" -q --repo "$T/rk" --password-file "$PW" check

# cat into a reader that stops early: quiet, and the status SIGPIPE would give
head -c 2000000 /dev/urandom >"$T/big"
"$BUNKER" -q --repo "$T/rk" --key-file "$T/key-init" backup "$T/big" >/dev/null
"$BUNKER" -q --repo "$T/rk" --key-file "$T/key-init" cat latest --name files/big 2>"$T/pipe.err" |
	head -c 1 >/dev/null
t_is "${PIPESTATUS[0]} $(cat "$T/pipe.err")" "141 " "cat | head -c 1: exit 141 and no message"

# Names with control characters (a backed-up file's, a snapshot's from --name, a
# database's in pg dump): printed escaped, never raw to a terminal; JSON keeps them
mkdir -p "$T/esc"
esc_name=$(printf 'evil\033]0;pwned\007\nforged line')
printf 'x' >"$T/esc/$esc_name"
printf 'y' >"$T/esc/back\\slash"
ln -s "$(printf 'to\033[2J')" "$T/esc/link"
printf 'z' >"$T/esc/$(printf 'c1-\302\233-raw-\233-ok-caf\303\251')"
RK() { "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-init" "$@"; }
t_rc 0 "a backup of files whose names hold control characters" RK backup "$T/esc" --tag "$(printf 't\033x')"
t_rc 0 "ls of that snapshot" RK ls latest
t_true "... prints no control character" bash -c "! LC_ALL=C grep -q -P '[\\x00-\\x08\\x0b-\\x1f\\x7f]' '$OUT'"
t_true "... and one line for each of the four files and the directory" test "$(wc -l <"$OUT")" = 5
t_true "... a C1 control (U+009B) and a byte that is not UTF-8 escaped, UTF-8 kept" \
	grep -q -F 'c1-\xc2\x9b-raw-\x9b-ok-café' "$OUT"
t_true "... escaping the name as \\x1b, \\x07 and \\x0a" grep -q -F 'evil\x1b]0;pwned\x07\x0aforged line' "$OUT"
t_true "... a backslash as it is, and the link's target escaped too" \
	bash -c "grep -q -F 'back\\slash' '$OUT' && grep -q -F 'link -> to\\x1b[2J' '$OUT'"
t_rc 0 "a snapshot named with control characters" RK backup --stdin --name "$(printf 'n\033[31mred\r')" </dev/null
t_true "... is reported escaped" grep -q -F 'saved (n\x1b[31mred\x0d)' "$OUT"
t_rc 0 "snapshots lists it" RK snapshots
t_true "... with no control character (name and tags)" \
	bash -c "! LC_ALL=C grep -q -P '[\\x00-\\x08\\x0b-\\x1f\\x7f]' '$OUT' && grep -q -F 't\\x1bx' '$OUT'"
t_rc 0 "snapshots --json" RK --json snapshots
t_true "... is valid JSON that keeps the exact name" python3 -c '
import json, sys
names = [s["name"] for s in json.load(open(sys.argv[1]))]
sys.exit(0 if "n\x1b[31mred\r" in names else 1)' "$OUT"
t_rc 0 "backup --json of that name" RK --json backup --stdin --name "$(printf 'q"\\\177')" </dev/null
t_true "... is valid JSON with the exact name" python3 -c '
import json, sys
sys.exit(0 if json.load(open(sys.argv[1]))["name"] == "q\"\\\x7f" else 1)' "$OUT"
t_rc 3 "an error naming such a snapshot (not found: exit 3)" RK cat latest --name "$(printf 'no\033[2Jsuch')"
t_one_line_error "... on one line"
t_true "... with the name escaped" bash -c "! LC_ALL=C grep -q -P '\\x1b' '$ERR'"

# Another user's repository, which that user can read but not write (not even
# LMDB's lock file): it opens read-only, without LMDB's locks, and reads work.
chmod 711 "$T"
cp "$T/key-init" "$T/key-nobody"
chown nobody "$T/key-nobody"
chmod -R go+rX,go-w "$T/rk"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
t_rc 0 "another user's repository, read-only to us: snapshots" \
	as_nobody "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-nobody" snapshots
t_rc 0 "... check --read-data" as_nobody "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-nobody" check --read-data
t_is "$(as_nobody "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-nobody" cat latest --name k 2>&1)" k \
	"... cat"
t_rc 1 "... a backup fails" as_nobody "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-nobody" backup "$T/key-nobody"
t_true "... saying why" grep -q "create .*/tmp/pack\.tmp.*Permission denied" "$ERR" || diag "$(cat "$ERR")"
# ... where this user may write the index directory but only read LMDB's files:
# the index's private directory of links cannot hold them (a hard link to a file
# neither ours nor writable is refused under fs.protected_hardlinks, and on a file
# system without hard links), and reads still work, read-only
chmod o+w "$T/rk/index"
t_rc 0 "... its index directory writable to us, not the index: snapshots" \
	as_nobody "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-nobody" snapshots
t_is "$(cat "$ERR")" "" "... and says nothing on stderr"
t_is "$(as_nobody "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-nobody" cat latest --name k 2>&1)" k \
	"... cat"
t_is "$(ls -A "$T/rk/index")" "$(printf 'data.mdb\nlock.mdb')" "... and no private directory left in the index"
# ... where LMDB opens the data.mdb checked, by its descriptor, never its name again:
# one this user swapped for a link to a FIFO between the check and LMDB's open of
# the name hung the command (its open of a FIFO waits for a writer)
if [ -n "${IO_FAULT_LIB:-}" ]; then
	mkfifo "$T/rk-fifo"
	t_rc 0 "... data.mdb swapped for a link to a FIFO once checked: snapshots still works" \
		as_nobody timeout 20 env LD_PRELOAD="$IO_FAULT_LIB" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" IO_FAULT=swap-close \
		IO_FAULT_PATH="$T/rk/index/data.mdb\$" IO_FAULT_SWAP_TO="$T/rk-fifo" \
		"$BUNKER" -q --repo "$T/rk" --key-file "$T/key-nobody" snapshots
	t_true "... (it was swapped)" test -L "$T/rk/index/data.mdb"
	rm -f "$T/rk/index/data.mdb" "$T/rk-fifo"
	mv "$T/rk/index/data.mdb.moved" "$T/rk/index/data.mdb"
else
	skip "data.mdb swapped once checked: io-fault library not built"
	skip "... (it was swapped)"
fi
chmod o-w "$T/rk/index"
# one it cannot read at all: the error says who cannot, and what fixes it
chmod 700 "$T/rk"
t_rc 1 "a repository this user cannot read fails" \
	as_nobody "$BUNKER" -q --repo "$T/rk" --key-file "$T/key-nobody" snapshots
t_true "... naming the user and the remedy" \
	grep -q "user nobody (uid [0-9]*) cannot open repository $T/rk: .*Permission denied (the repository must be this user's, or shared through its group)" "$ERR" ||
	diag "$(cat "$ERR")"
t_one_line_error "... on one line"
chmod 755 "$T/rk"

# A command leaves no core file, and other processes of its user cannot read its
# memory (it holds secrets in ordinary memory: the --dbname kept, PGPASSWORD, the
# password command's output): core size limit 0, and not dumpable, which makes
# the kernel give its /proc/PID files to root. Seen while it waits for its
# password command, as nobody when the tests run as root.
run_as=()
[ "$(id -u)" = 0 ] && run_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
mkfifo "$T/hold"
${run_as[@]+"${run_as[@]}"} "$BUNKER" -q --repo "$T/no-repo" --password-command 'head -n 1' snapshots \
	<"$T/hold" >/dev/null 2>&1 &
held=$!
exec 7>"$T/hold"
for i in $(seq 1 100); do
	pgrep -P "$held" >/dev/null && break
	sleep 0.1
done
t_is "$(awk '/^Max core file size/ { print $5, $6 }' "/proc/$held/limits")" "0 $(ulimit -H -c)" \
	"a running command's core file size limit is 0 (the hard limit left to its children)"
t_is "$(stat -c %U "/proc/$held/environ")" root "... and it is not dumpable (its /proc files are root's)"
printf 'x\n' >&7
exec 7>&-
wait "$held"

# A repository that another user may write (the server's user's, which root's
# commands use too, README): a link that user puts in the index must not make a
# command of root's write, create or chown the file it leads to (LMDB opens
# index/lock.mdb and data.mdb by name and writes its lock header into lock.mdb:
# found by review, `snapshots` overwrote a file only root could read)
if [ "$(id -u)" = 0 ]; then
	L=$T/linked
	mkdir -p "$L" "$T/root-dir"
	chown nobody: "$L"
	chmod 700 "$T/root-dir"
	as_nobody "$BUNKER" -q --repo "$L/repo" --new-key-file "$L/key" init >/dev/null
	printf 'root only\n' >"$T/victim"
	chmod 600 "$T/victim"
	LK() { "$BUNKER" -q --repo "$L/repo" --key-file "$L/key" "$@"; }
	as_nobody ln -sf "$T/victim" "$L/repo/index/lock.mdb"
	t_rc 1 "as root, index/lock.mdb a link to a file of root's: snapshots is refused" LK snapshots
	t_is "$(cat "$T/victim")" "root only" "... and that file is untouched"
	t_true "... naming the link" grep -q "index $L/repo/index/lock.mdb is a symbolic link" "$ERR"
	t_one_line_error "... on one line"
	as_nobody rm -f "$L/repo/index/lock.mdb" "$L/repo/index/data.mdb"
	as_nobody ln -s "$T/root-dir/made" "$L/repo/index/data.mdb"
	t_rc 1 "index/data.mdb a link to a new file in a directory of root's: refused" LK snapshots
	t_is "$(ls -A "$T/root-dir")" "" "... and nothing is made there"
	as_nobody rm -f "$L/repo/index/data.mdb"
	as_nobody mv "$L/repo/index" "$L/index.real"
	as_nobody ln -s "$T/root-dir" "$L/repo/index"
	t_rc 1 "index a link to a directory of root's: refused" LK snapshots
	t_is "$(ls -A "$T/root-dir")" "" "... and nothing is made there"
	as_nobody rm "$L/repo/index"
	t_rc 0 "the links gone, root's snapshots works (a new index)" LK snapshots
	t_is "$(find "$L/repo" ! -user nobody; ls -A "$L/repo/index")" "$(printf 'data.mdb\nlock.mdb')" \
		"... all of it nobody's, and no private directory left in the index"
	# the same for the directories objects are put in, and tmp/: root's files were
	# made, given to nobody, where the link led (in /etc/cron.daily, a script root
	# runs); and data/, where packs go
	for d in snapshots tmp data; do
		as_nobody mv "$L/repo/$d" "$L/moved"
		as_nobody ln -s "$T/root-dir" "$L/repo/$d"
		printf 'new data for %s\n' "$d" >"$T/via"
		t_rc 1 "as root, $d a link to a directory of root's: a backup fails" \
			LK backup --stdin --name "via-$d" <"$T/via"
		t_is "$(ls -A "$T/root-dir")" "" "... and puts nothing there"
		t_true "... naming the link" grep -q "$L/repo/$d is a symbolic link" "$ERR"
		as_nobody rm "$L/repo/$d"
		as_nobody mv "$L/moved" "$L/repo/$d"
	done
	t_rc 0 "the links gone, root's backup works" LK backup --stdin --name after <"$T/victim"
	t_is "$(find "$L/repo" ! -user nobody)" "" "... all it wrote nobody's"
	# reads too: every pack swapped for a FIFO hung root's cat (its open waits for a
	# writer), for a link made root open what it leads to (a device whose open does
	# something; here a file of root's)
	find "$L/repo/data" -type f >"$T/packs"
	swap_packs() { # KIND: each pack moved aside and a fifo or a link put in its place
		while read -r f; do
			as_nobody mv "$f" "$f.real"
			if [ "$1" = fifo ]; then as_nobody mkfifo "$f"; else as_nobody ln -s "$T/victim" "$f"; fi
		done <"$T/packs"
	}
	unswap_packs() { while read -r f; do as_nobody rm -f "$f"; as_nobody mv "$f.real" "$f"; done <"$T/packs"; }
	swap_packs fifo
	t_rc 1 "as root, the packs FIFOs: cat fails at once" timeout 20 "$BUNKER" -q --repo "$L/repo" \
		--key-file "$L/key" cat latest --name after
	t_true "... naming the pack as no regular file" grep -q "$L/repo/data/.* is not a regular file: not read" "$ERR"
	unswap_packs
	swap_packs link
	t_rc 1 "as root, the packs links to a file of root's: cat fails" LK cat latest --name after
	t_true "... naming the link" grep -q "$L/repo/data/.* is a symbolic link: not followed" "$ERR"
	unswap_packs
	t_is "$(LK cat latest --name after)" "root only" "the packs back, root's cat reads the snapshot"
else
	for i in $(seq 1 25); do
		ok "# SKIP links in another user's repository: the tests do not run as root"
	done
fi

# an init that fails takes its new key file with it, so that a retry works
: >"$T/not-a-dir"
t_rc 1 "init under a file fails" "$BUNKER" -q --repo "$T/not-a-dir/r" --new-key-file "$T/key-failed" init
t_true "... and leaves no key file" test ! -e "$T/key-failed"
t_rc 0 "the same init elsewhere then works" "$BUNKER" -q --repo "$T/r-retry" --new-key-file "$T/key-failed" init
t_rc 1 "init over an existing repository fails" "$BUNKER" -q --repo "$T/r-retry" --new-key-file "$T/key-again" init
t_true "... and leaves no key file" test ! -e "$T/key-again"

# snapshots' columns line up whatever the names' bytes: padding counts terminal
# columns ("données" is 8 bytes in 7 columns, "日本語" 9 bytes in 6; combining marks,
# variation selectors and zero-width joiners take none, emoji two)
RR() { "$BUNKER" -q --repo "$T/r-retry" --key-file "$T/key-failed" "$@"; }
for n in abcdefg données 日本語 abcdef $'e\u0301te\u0301' $'\u2714\ufe0e-ok' $'\U0001f469\u200d\U0001f467-family'; do
	printf '%s' "$n" | RR backup --stdin --name "$n" >/dev/null
done
t_rc 0 "snapshots with non-ASCII names" RR snapshots
t_is "$(python3 -c '
import sys, unicodedata
zero = lambda c: unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf")
cols = lambda s: sum(0 if zero(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
print(sorted(set(cols(l[:l.index(" MB")]) for l in open(sys.argv[1], encoding="utf-8"))))
' "$OUT" 2>&1)" "[$(python3 -c 'print(16 + 2 + 20 + 2 + 24 + 11)')]" \
	"... the MB column starts at the same terminal column on every line" || diag "$(cat "$OUT")"

# the options documented as repeatable stay so
t_rc 0 "backup --tag twice" RK backup --stdin --name two-tags --tag a --tag b </dev/null
t_is "$(RK snapshots --json --name two-tags | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["tags"])')" \
	"['a', 'b']" "... keeps both tags"
t_rc 0 "restore --include twice" RK restore latest --name files/esc --target "$T/inc2" \
	--include esc/back\\slash --include esc/link
t_is "$(ls "$T/inc2/esc" | tr '\n' ' ')" "back\\slash link " "... restores both paths"
# a path through a file is a path the snapshot lacks: exit 3, as any other (found by
# review: exit 1)
t_rc 3 "restore --include of a path through a file: exit 3" RK restore latest --name files/esc \
	--target "$T/inc3" --include esc/back\\slash/x
t_true "... naming it" grep -q "esc/back.slash/x: no such path in snapshot (back.slash is not a directory)" \
	"$ERR" || diag "$(cat "$ERR")"

# A repository shared through its group: another member's writes take the
# repository's group, and its owner goes on writing (a member's backup made data/xx
# of the member's own group, and the owner's next write, archive_command's in a
# PostgreSQL setup, failed with Permission denied from then on: found by a
# helper's exploration). As root: a user 4321 of no name, in group 4321 and the
# repository's (setpriv).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	G=$T/grp
	mkdir -p "$G" && chown nobody: "$G"
	runuser -u nobody -- "$BUNKER" -q --repo "$G/repo" --new-key-file "$G/nobody.key" init >/dev/null
	"$BUNKER" -q --repo "$G/repo" --key-file "$G/nobody.key" key add --new-key-file "$G/m.key" >/dev/null
	chown 4321:4321 "$G/m.key"
	echo member >"$G/m.txt" && chmod 644 "$G/m.txt"
	t_rc 0 "a group member backs up into the repository" setpriv --reuid 4321 --regid 4321 \
		--groups "$(id -g nobody)" -- "$BUNKER" -q --repo "$G/repo" --key-file "$G/m.key" \
		backup --name member "$G/m.txt"
	t_is "$(find "$G/repo" ! -group "$(id -g nobody)" -printf '%g %P\n')" "" \
		"... everything it made is the repository's group"
	t_rc 0 "... and the owner backs up after it" runuser -u nobody -- "$BUNKER" -q \
		--repo "$G/repo" --key-file "$G/nobody.key" backup --name owner --stdin </dev/null
else
	skip "a repository shared through its group: not root"
fi

# Under an address-space limit the index's map cannot be made: said, with what to
# raise (it was "Cannot allocate memory" alone). (ASan's shadow memory needs more
# than any such limit: not in that build.)
if ldd "$BUNKER" | grep -q libasan; then
	skip "an address-space limit: not under ASan"
else
	limited() { (ulimit -v 8000000 && RK "$@"); }
	t_rc 1 "snapshots under ulimit -v 8 GB exits 1" limited snapshots
	t_true "... naming the map and the limit" grep -q \
		"^bunker: index .*: open: cannot map 256 GiB of address space (the index reserves that much, and uses what it needs): raise the process's address-space limit (ulimit -v, systemd's LimitAS=)$" \
		"$ERR" || diag "$(cat "$ERR")"
fi

done_testing
