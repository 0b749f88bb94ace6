#!/usr/bin/env python3
"""metrics-doc.py POSGUARD [--check] - the metrics table of
docs/OBSERVABILITY.md, from `posguard metrics --json` (the one table in the
code that names them). Rewrites the table between its markers, or with
--check fails when the document is not what the code exports."""
import json
import os
import subprocess
import sys

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs",
                   "OBSERVABILITY.md")
BEGIN, END = "<!-- metrics:begin -->", "<!-- metrics:end -->"

fams = json.loads(subprocess.run([sys.argv[1], "metrics", "--json"], check=True,
                                 capture_output=True, text=True).stdout)
rows = ["| metric | type | labels | what |", "|---|---|---|---|"]
for f in fams:
    labels = ", ".join(f"`{x}`" for x in f["labels"]) or "-"
    rows.append(f"| `{f['name']}` | {f['type']} | {labels} | {f['help']} |")
table = "\n".join(rows)
doc = open(DOC).read()
a, b = doc.index(BEGIN) + len(BEGIN), doc.index(END)
new = doc[:a] + "\n" + table + "\n" + doc[b:]
if "--check" in sys.argv:
    if new != doc:
        sys.exit("docs/OBSERVABILITY.md: the metrics table differs from "
                 "`posguard metrics`; run scripts/metrics-doc.py build/posguard")
    print(f"docs/OBSERVABILITY.md lists the {len(fams)} metric families posguard exports")
else:
    open(DOC, "w").write(new)
