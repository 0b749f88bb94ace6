#!/usr/bin/env bash
# build.sh [DIR] [cmake args...] - configure and build posguard into DIR
# (default build/). Installs the dependencies first when they are missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
dir=${1:-build}
shift || true
cmake -S "$root" -B "$root/$dir" -G Ninja "$@" >/dev/null
cmake --build "$root/$dir"
