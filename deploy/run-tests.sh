#!/usr/bin/env bash
# Installs dependencies, builds cyrsync and runs the whole CTest suite (unit + real-Cyrus
# integration). This is the test command README.md gives and .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCYRSYNC_WERROR=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j1 "$@"
