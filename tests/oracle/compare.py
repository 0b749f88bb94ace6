#!/usr/bin/python3
"""Compare the oracle's output with the engine's.

    compare.py EXPECTED ACTUAL [--stats-expected FILE --stats-actual FILE]

EXPECTED and ACTUAL are JSON-lines files of alerts and refunds.  From every
object `detected_at` and `reason` are dropped (wall-clock time and free text);
the rest is canonicalised (json.dumps with sorted keys) and the two files are
compared as multisets.  Prints the counts per type/finding on both sides and
the first 20 differences, grouped as missing (expected, not produced) and
unexpected (produced, not expected), each with the closest object on the
other side (same alert_id / refund_id) and the fields that differ.

With --stats-expected/--stats-actual, also compares the `rejected`,
`duplicates` and `late` counters of the two stats files.

Exit status 0 iff everything compared is equal.
"""

import argparse
import json
import sys
from collections import Counter

IGNORED_FIELDS = ["detected_at", "reason"]
SHOW_DIFFERENCES = 20
STATS_KEYS = ("rejected", "duplicates", "late")


def load(path):
    """-> (list of objects without ignored fields, list of counting labels, bad lines)."""
    objects, labels, bad = [], [], []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError as e:
                bad.append("%s:%d: not JSON (%s): %r" % (path, number, e, raw[:200]))
                continue
            if not isinstance(obj, dict):
                bad.append("%s:%d: not an object" % (path, number))
                continue
            labels.append(label_of(obj))
            for key in IGNORED_FIELDS:
                obj.pop(key, None)
            objects.append(obj)
    return objects, labels, bad


def label_of(obj):
    kind = obj.get("type", "?")
    if kind == "alert":
        return "alert/%s" % obj.get("finding")
    if kind == "refund":
        return "refund/%s" % obj.get("reason")
    return kind


def canonical(obj):
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def identity(obj):
    """The id an object is matched on when looking for its closest peer."""
    return obj.get("alert_id") if obj.get("type") == "alert" else obj.get("refund_id")


def differing_fields(a, b):
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k, "<absent>") != b.get(k, "<absent>")]


def describe(side, canon, other_by_id):
    obj = json.loads(canon)
    lines = ["  %s: %s" % (side, canon)]
    peers = other_by_id.get(identity(obj), [])
    if not peers:
        lines.append("      no object with the same id on the other side")
    else:
        # the peer with the fewest differing fields
        peer = min(peers, key=lambda p: len(differing_fields(obj, p)))
        fields = differing_fields(obj, peer)
        lines.append("      closest (same id): %s" % canonical(peer))
        lines.append("      differs in: %s" % ", ".join(
            "%s (%r vs %r)" % (k, obj.get(k, "<absent>"), peer.get(k, "<absent>"))
            for k in fields))
    return lines


def compare_outputs(expected_path, actual_path):
    exp, exp_labels, exp_bad = load(expected_path)
    act, act_labels, act_bad = load(actual_path)
    ok = not exp_bad and not act_bad
    for line in exp_bad + act_bad:
        print("BAD LINE " + line)

    exp_count, act_count = Counter(exp_labels), Counter(act_labels)
    print("%-40s %10s %10s" % ("type/finding", "expected", "actual"))
    for label in sorted(set(exp_count) | set(act_count)):
        mark = "" if exp_count[label] == act_count[label] else "   <-- differs"
        print("%-40s %10d %10d%s" % (label, exp_count[label], act_count[label], mark))
    print("%-40s %10d %10d" % ("total", len(exp), len(act)))

    exp_multiset = Counter(canonical(o) for o in exp)
    act_multiset = Counter(canonical(o) for o in act)
    missing = exp_multiset - act_multiset
    unexpected = act_multiset - exp_multiset
    if missing or unexpected:
        ok = False
        exp_by_id, act_by_id = {}, {}
        for o in exp:
            exp_by_id.setdefault(identity(o), []).append(o)
        for o in act:
            act_by_id.setdefault(identity(o), []).append(o)
        n_missing = sum(missing.values())
        n_unexpected = sum(unexpected.values())
        print("\nDIFFERENT: %d missing (expected, not produced), %d unexpected (produced, not expected)"
              % (n_missing, n_unexpected))
        shown = 0
        if missing:
            print("missing:")
            for canon in sorted(missing):
                if shown >= SHOW_DIFFERENCES:
                    break
                print("\n".join(describe("expected", canon, act_by_id)))
                shown += 1
        if unexpected and shown < SHOW_DIFFERENCES:
            print("unexpected:")
            for canon in sorted(unexpected):
                if shown >= SHOW_DIFFERENCES:
                    break
                print("\n".join(describe("actual", canon, exp_by_id)))
                shown += 1
        if n_missing + n_unexpected > shown:
            print("... and %d more differences" % (n_missing + n_unexpected - shown))
    else:
        print("\nEQUAL: %d objects" % len(exp))
    return ok


def compare_stats(expected_path, actual_path):
    with open(expected_path) as f:
        exp = json.load(f)
    with open(actual_path) as f:
        act = json.load(f)
    ok = True
    print("\n%-40s %10s %10s" % ("stats", "expected", "actual"))
    for key in STATS_KEYS:
        e, a = exp.get(key), act.get(key)
        mark = "" if e == a else "   <-- differs"
        if e != a:
            ok = False
        print("%-40s %10s %10s%s" % (key, e, a, mark))
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description="compare oracle and engine outputs")
    ap.add_argument("expected")
    ap.add_argument("actual")
    ap.add_argument("--stats-expected")
    ap.add_argument("--stats-actual")
    ap.add_argument("--ignore", default="",
                    help="more fields to leave out, comma-separated "
                         "(e.g. rule_version,rule_hash across a rule reload)")
    args = ap.parse_args(argv)
    IGNORED_FIELDS.extend(f for f in args.ignore.split(",") if f)
    if bool(args.stats_expected) != bool(args.stats_actual):
        ap.error("--stats-expected and --stats-actual go together")
    ok = compare_outputs(args.expected, args.actual)
    if args.stats_expected:
        ok = compare_stats(args.stats_expected, args.stats_actual) and ok
    print("\nRESULT: %s" % ("EQUAL" if ok else "DIFFERENT"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
