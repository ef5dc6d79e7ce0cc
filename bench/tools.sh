#!/usr/bin/env bash
# One backup tool behind one interface, so bench/run.sh can time each operation as a
# single process tree (under /usr/bin/time for the peak RSS).
#
#   tools.sh VARIANT init    REPO
#   tools.sh VARIANT backup  REPO NAME LABEL FILE   (store FILE as snapshot NAME/LABEL)
#   tools.sh VARIANT restore REPO NAME LABEL OUT    (write the newest NAME (bunker,
#                                                     restic) or NAME/LABEL to OUT)
#   tools.sh VARIANT stored  REPO                   (print bytes the repository holds)
#
# VARIANT: bunker-16K|bunker-32K|bunker-64K (any size bunker accepts), borg (default
# chunker: 2 MiB average), borg-64K (buzhash 10,23,16: 64 KiB average), restic, and
# zstd-openssl (zstd -3 | openssl enc -aes-256-cbc -pbkdf2: no dedup).
#
# Environment (set by run.sh): BENCH_BUNKER (bunker binary), BORG_PASSPHRASE,
# BORG_BASE_DIR, RESTIC_PASSWORD_FILE, RESTIC_CACHE_DIR.
set -euo pipefail

variant=${1:?variant}
op=${2:?op}
repo=${3:?repo}
shift 3

case "$variant" in
  bunker-*)
    size=${variant#bunker-}
    bk=${BENCH_BUNKER:?BENCH_BUNKER not set}
    key="$repo.key"
    case "$op" in
      init)    exec "$bk" --repo "$repo" --new-key-file "$key" init --chunk-size "$size" ;;
      backup)  exec "$bk" --repo "$repo" --key-file "$key" backup --stdin --name "$1" < "$3" ;;
      restore) exec "$bk" --repo "$repo" --key-file "$key" cat latest --name "$1" > "$3" ;;
    esac ;;
  borg|borg-64K)
    params=()
    # shellcheck disable=SC2054  # the commas belong to one argument
    [ "$variant" = borg-64K ] && params=(--chunker-params buzhash,10,23,16,4095)
    case "$op" in
      init)    exec borg init -e repokey "$repo" ;;
      backup)  exec borg create --compression zstd,3 "${params[@]}" --stdin-name "$1" \
                 "$repo::$1-$2" - < "$3" ;;
      restore) exec borg extract --stdout "$repo::$1-$2" > "$3" ;;
    esac ;;
  restic)
    case "$op" in
      # "stable" is repository format 2 (compressed) from restic 0.14 on; the default
      # compression is "auto" (zstd, fastest level).
      init)    exec restic -q -r "$repo" init ;;
      backup)  exec restic -q -r "$repo" backup --host bench --stdin --stdin-filename "$1" \
                 < "$3" ;;
      restore) exec restic -q -r "$repo" dump --host bench latest "/$1" > "$3" ;;
    esac ;;
  zstd-openssl)
    key="$repo.key"
    case "$op" in
      init)    mkdir "$repo" && openssl rand -hex 32 > "$key" && exit 0 ;;
      backup)  zstd -3 -q -c < "$3" \
                 | openssl enc -aes-256-cbc -pbkdf2 -pass "file:$key" -out "$repo/$1-$2.zst.enc"
               exit 0 ;;
      restore) openssl enc -d -aes-256-cbc -pbkdf2 -pass "file:$key" -in "$repo/$1-$2.zst.enc" \
                 | zstd -d -q -c > "$3"
               exit 0 ;;
    esac ;;
  *) echo "tools.sh: unknown variant $variant" >&2; exit 2 ;;
esac

case "$op" in
  # Everything in the repository directory, apparent size: data, indexes, metadata.
  stored) du -sb --apparent-size "$repo" | cut -f1 ;;
  *) echo "tools.sh: unknown operation $op for $variant" >&2; exit 2 ;;
esac
