#!/usr/bin/env bash
# progress.sh POSGUARD RULES - long work shows progress on a terminal only:
# replay under a pseudo-terminal (script(1)) draws "records/s" and "% done"
# lines on stderr and clears them; without a terminal, or with
# PG_NO_PROGRESS set, stderr has none; stdout is the same bytes in all
# three.
set -euo pipefail
posguard=$1 rules=$2
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$root/scripts/posgen.py" --count 20000 --seed 5 \
    --out "$work/in.jsonl" 2>"$work/posgen.err" ||
    { cat "$work/posgen.err" >&2; echo "progress: FAIL: posgen" >&2; exit 1; }
run() { "$posguard" replay --rules "$rules" --clock event --input "$work/in.jsonl"; }
fail() { echo "progress: FAIL: $*" >&2; exit 1; }

run >"$work/plain.out" 2>"$work/plain.err" ||
    fail "replay exited $?: $(cat "$work/plain.err")"
grep -q "records/s" "$work/plain.err" && fail "progress drawn without a terminal"
export -f run; export posguard rules work
# Redraw every 1024 records, so the line is there however fast the machine
# gets through the input (the default waits 200 ms, which a fast machine can
# finish before: the CI run failed so).
export PG_PROGRESS_MS=0
# script(1) runs its command with $SHELL, or /bin/sh when SHELL is not in
# the environment (as on the CI machine), and sh does not see bash's
# exported function: the run failed there without a word.
export SHELL=/bin/bash
script -qec 'run > "$work/tty.out"' "$work/typescript" >/dev/null </dev/null ||
    fail "replay under script(1) exited $?: $(tail -c 2000 "$work/typescript")"
grep -aq "records/s" "$work/typescript" || fail "no progress on a terminal"
grep -aqE "[0-9]+%, [0-9]+ s left" "$work/typescript" || fail "no % done on a terminal"
draws=$(grep -ao "records/s" "$work/typescript" | wc -l)
[ "$draws" -ge 10 ] || fail "$draws redraws of 20000 records at PG_PROGRESS_MS=0, want one per 1024"
PG_NO_PROGRESS=1 script -qec 'run > "$work/quiet.out"' "$work/typescript2" >/dev/null </dev/null ||
    fail "replay under script(1) with PG_NO_PROGRESS exited $?: $(tail -c 2000 "$work/typescript2")"
grep -aq "records/s" "$work/typescript2" && fail "PG_NO_PROGRESS did not silence it"
cmp -s "$work/plain.out" "$work/tty.out" || fail "stdout differs on a terminal"
cmp -s "$work/plain.out" "$work/quiet.out" || fail "stdout differs with PG_NO_PROGRESS"
echo "progress: drawn on a terminal ($draws redraws), quiet otherwise, stdout unchanged"
