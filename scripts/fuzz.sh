#!/usr/bin/env bash
# fuzz.sh [SECONDS] - build every tests/fuzz/fuzz_*.c with libFuzzer and
# ASan+UBSan and run each for SECONDS (default 60) on its seed corpus.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-60}
out=$(mktemp -d)
core=$(ls engine/*.c | grep -v engine/main.c)
# The protobuf schemas, compiled as schemas/CMakeLists.txt does.
mkdir -p "$out/gen"
for proto in schemas/*.proto; do
  protoc-c --c_out="$out/gen" -Ischemas "$proto"
done
gen=$(ls "$out"/gen/*.pb-c.c)
# The live dashboard's page, embedded as CMakeLists.txt does.
cmake -DIN=engine/dashboard/index.html -DOUT="$out/gen/dashboard_html.c" \
    -DNAME=pg_dashboard_html -P cmake/embed.cmake
gen="$gen $out/gen/dashboard_html.c"
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
      -fno-sanitize-recover=all -D_POSIX_C_SOURCE=200809L -Iengine \
      -I"$out/gen" "$src" $core $gen \
      $(pkg-config --cflags --libs libprotobuf-c rdkafka libmicrohttpd) \
      -lyaml -lxxhash -lm -o "$out/$name"
  corpus=tests/fuzz/corpus_${name#fuzz_}
  mkdir -p "$out/corpus_$name"
  echo "== $name for ${secs}s"
  "$out/$name" -max_total_time="$secs" -max_len=8192 -print_final_stats=1 \
      "$out/corpus_$name" "$corpus" 2>&1 | tail -3
done
