# bench/lib.sh - what the benchmark scripts share (sourced after cd to the
# checkout): the Release build, the machine and commit as text, the
# generated input, the name of a results file.
bench_build() { scripts/build.sh build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null; }
bench_machine() {
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
}
bench_commit() { git rev-parse --short HEAD 2>/dev/null || echo unknown; }
# bench_input N FILE: N generated records (with redeliveries and malformed lines)
bench_input() { /usr/bin/python3 scripts/posgen.py --count "$1" --seed 99 --out "$2" 2>/dev/null; }
# bench_out NAME EXT: bench/results/NAME-<host>-<date>EXT (the folder made),
# or NAME-<host>-<date>-2EXT, -3 ... when a run of the same day is there
# (a second run never overwrites the first one's figures)
bench_out() {
  mkdir -p bench/results
  local base="bench/results/$1-$(hostname -s)-$(date -u +%Y%m%d)" k=2
  local f="$base$2"
  while [ -e "$f" ]; do f="$base-$k$2"; k=$((k + 1)); done
  echo "$f"
}
