#!/usr/bin/env bash
# Installs what bunker needs to build, test and benchmark on Debian 12, if missing.
# Idempotent: does nothing when every package is already installed.
set -euo pipefail
pkgs=(build-essential meson ninja-build pkg-config clang
      liblmdb-dev libzstd-dev libsodium-dev
      libpq-dev libcurl4-openssl-dev libfuse3-dev fuse3
      postgresql-15 zstd openssl lmdb-utils xxd python3 util-linux coreutils bc iproute2)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
