#!/usr/bin/env bash
# Installs every Debian 12 package cyrsync needs to build, test, demo and benchmark.
# Idempotent; run as root. Nothing is downloaded outside Debian's archive.
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git
  libboost-dev libboost-system-dev librsync-dev zlib1g-dev libdeflate-dev liburing-dev libssl-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libsqlite3-dev libcli11-dev nlohmann-json3-dev
  python3 openssl rsync strace procps
  cyrus-imapd cyrus-admin cyrus-clients cyrus-replication sasl2-bin
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  # Keep the packaged system Cyrus from starting; cyrsync runs private instances.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
