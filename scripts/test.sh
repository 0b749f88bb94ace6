#!/usr/bin/env bash
# test.sh - the whole test suite, as CI runs it:
#   1. format check (clang-format) and the generated-docs check
#   2. build (RelWithDebInfo) and every CTest test (unit, oracle, e2e)
#   3. build with ASan+UBSan and run the suite again
#   4. build with TSan and run the unit tests (the concurrent state table's
#      stress and linearizability tests among them)
#   5. a short libFuzzer run of every fuzz target
# Options: --quick (skip 3, 4 and 5).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)

scripts/install-deps.sh
echo "== format check"
scripts/format.sh --check

echo "== build and test"
scripts/build.sh build
export PG_TEST_TMP=$(mktemp -d)
(cd build && ctest --output-on-failure -j "$jobs")

if [ $quick -eq 0 ]; then
  echo "== ASan+UBSan build and test"
  scripts/build.sh build-asan -DPG_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
  export PG_TEST_TMP=$(mktemp -d)
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure -j "$jobs")
  echo "== TSan build and unit tests"
  scripts/build.sh build-tsan -DPG_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
  # test_kafka_faults drives librdkafka's own threads, which are not built
  # with TSan (its reports there would be about librdkafka, not posguard)
  export PG_TEST_TMP=$(mktemp -d)
  (cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
     ctest --output-on-failure -j "$jobs" -L unit -E test_kafka_faults)
  echo "== fuzz (short)"
  scripts/fuzz.sh 30
fi
echo "== all tests passed"
