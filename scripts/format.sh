#!/usr/bin/env bash
# format.sh [--check] - clang-format every C source of the project.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
files=$(git ls-files --cached --others --exclude-standard "*.c" "*.h" "*.cc" 2>/dev/null || true)
[ -n "$files" ] || files=$(find engine tests bench -name "*.[ch]")
if [ "${1:-}" = "--check" ]; then
  clang-format --dry-run --Werror $files
else
  clang-format -i $files
fi
