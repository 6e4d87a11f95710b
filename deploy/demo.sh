#!/usr/bin/env bash
# Installs dependencies, builds cyrsync, and runs the built-in demo: a real Cyrus 3.6 master is
# filled with mail, synced into a replica tree through `cyrsync serve`, a second Cyrus is started
# on the replica's files, and both are compared side by side over IMAP and ManageSieve.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target cyrsync
CYRSYNC_BIN="$PWD/build/cyrsync" exec python3 tests/integration/demo.py "$@"
