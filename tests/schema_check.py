#!/usr/bin/python3
"""schema_check.py INPUT OUTPUTS DEAD_LETTER - the JSON contract in schemas/.

Every alert and refund the engine wrote must validate against
schemas/alert.schema.json / refund.schema.json, every dead-letter entry
against reject.schema.json, and every input line the engine accepted (not in
the dead-letter file) against record.schema.json. The last check runs the
one-way implication only: the engine is stricter than JSON Schema can say.
"""
import json
import os
import sys

import jsonschema

here = os.path.dirname(os.path.abspath(__file__))
schemas = os.path.join(here, "..", "schemas")


def validator(name):
    with open(os.path.join(schemas, name + ".schema.json")) as f:
        s = json.load(f)
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


def main():
    inp, outs, dlq = sys.argv[1:4]
    v = {n: validator(n) for n in ("record", "alert", "refund", "reject")}
    bad = 0

    def check(kind, obj, where):
        nonlocal bad
        errs = list(v[kind].iter_errors(obj))
        if errs:
            bad += 1
            if bad <= 10:
                print(f"{where}: {kind}: {errs[0].message}", file=sys.stderr)

    n = {"alert": 0, "refund": 0, "reject": 0, "record": 0}
    with open(outs) as f:
        for i, line in enumerate(f, 1):
            o = json.loads(line)
            check(o.get("type"), o, f"{outs}:{i}")
            n[o["type"]] += 1
    rejected = set()
    with open(dlq, "rb") as f:
        for i, line in enumerate(f, 1):
            o = json.loads(line)
            check("reject", o, f"{dlq}:{i}")
            rejected.add(o["line_no"])
            n["reject"] += 1
    with open(inp, "rb") as f:
        for i, line in enumerate(f, 1):
            if i in rejected:
                continue
            check("record", json.loads(line), f"{inp}:{i}")
            n["record"] += 1
    if bad:
        sys.exit(f"schema_check: {bad} objects do not match schemas/")
    print("schema_check ok:", n)


if __name__ == "__main__":
    main()
