#!/usr/bin/env python3
"""check.py - every Grafana panel's PromQL is sound and asks for metrics
posguard exports.

  dashboards/check.py POSGUARD [DASHBOARD.json...]   (default: dashboards/*.json)
  dashboards/check.py --self-test POSGUARD

For each query of each panel:
  - it names at least one posguard_* metric, and each is a family that
    `posguard metrics --json` lists (a histogram's _bucket, _sum, _count
    included);
  - every label it groups by or matches on is a label of a metric it names
    (le for histograms, and the job/instance labels Prometheus adds);
  - Prometheus's own parser accepts it (promtool check rules, on a rule
    file with one recording rule per query);
  - the panel reads the dashboard's datasource variable.
The provisioning files must parse as YAML. --self-test breaks a copy of the
dashboard three ways and expects each to be refused.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ADDED = {"job", "instance", "__name__"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
            "bool", "offset"}


def families(posguard):
    out = subprocess.run([posguard, "metrics", "--json"], check=True,
                         capture_output=True, text=True).stdout
    fams = {}
    for f in json.loads(out):
        fams[f["name"]] = f
        if f["type"] == "histogram":
            for s in ("_bucket", "_sum", "_count"):
                fams[f["name"] + s] = dict(f, labels=f["labels"] + ["le"])
    return fams


def panels_of(d):
    for p in d.get("panels", []):
        yield p
        yield from p.get("panels", [])


def check_expr(expr, fams):
    errs = []
    names = set(re.findall(r"\bposguard_[a-z0-9_]+", expr))
    if not names:
        errs.append("names no posguard metric")
    unknown = sorted(n for n in names if n not in fams)
    errs += [f"unknown metric {n}" for n in unknown]
    known = set(ADDED)
    for n in names - set(unknown):
        known |= set(fams[n]["labels"])
    used = set()
    for grp in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        used |= {x.strip() for x in grp.split(",") if x.strip()}
    for sel in re.findall(r"\{([^}]*)\}", expr):
        used |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", sel))
    errs += [f"label {lab} is not a label of {sorted(names)}"
             for lab in sorted(used - known)]
    return errs


def promtool_check(exprs):
    """Prometheus's parser on every expression; {expr: error} for the bad."""
    bad = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, e in enumerate(exprs):
            path = os.path.join(tmp, f"r{i}.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": [{"name": "g", "rules": [
                    {"record": f"check:q{i}", "expr": e}]}]}, f)
            r = subprocess.run(["promtool", "check", "rules", path],
                               capture_output=True, text=True)
            if r.returncode:
                bad[e] = (r.stdout + r.stderr).strip().splitlines()[-1]
    return bad


def check(posguard, paths):
    fams = families(posguard)
    errors, queries = [], []
    for path in paths:
        d = json.load(open(path))
        var = [v for v in d.get("templating", {}).get("list", [])
               if v.get("type") == "datasource"]
        if not var:
            errors.append(f"{path}: no datasource variable")
        n = 0
        for p in panels_of(d):
            if p.get("type") == "row":
                continue
            if p.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"{path}: panel '{p['title']}' does not read ${{datasource}}")
            if not p.get("targets"):
                errors.append(f"{path}: panel '{p['title']}' has no query")
            for t in p.get("targets", []):
                n += 1
                e = t.get("expr", "")
                queries.append(e)
                errors += [f"{path}: panel '{p['title']}' {t.get('refId')}: {m}"
                           for m in check_expr(e, fams)]
        print(f"{path}: {n} queries")
    for e, why in promtool_check(queries).items():
        errors.append(f"promtool refuses `{e}`: {why}")
    for y in glob.glob(os.path.join(HERE, "provisioning", "*", "*.yaml")):
        try:
            yaml.safe_load(open(y))
        except yaml.YAMLError as ex:
            errors.append(f"{y}: {ex}")
    for e in errors:
        print("  BAD", e)
    return errors


def self_test(posguard):
    src = json.load(open(os.path.join(HERE, "posguard.json")))
    breaks = {
        "an unknown metric": lambda e: e.replace("posguard_alerts_total",
                                                 "posguard_alerts_totl"),
        "a label the metric lacks": lambda e: e.replace("by (finding)",
                                                        "by (terminal_id)"),
        "a syntax error": lambda e: e.replace("rate(", "rate((", 1),
    }
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for what, f in breaks.items():
            d = json.loads(json.dumps(src))
            for p in panels_of(d):
                for t in p.get("targets", []):
                    t["expr"] = f(t["expr"])
            path = os.path.join(tmp, "broken.json")
            json.dump(d, open(path, "w"))
            print(f"self-test: {what}")
            if not check(posguard, [path]):
                failed.append(what)
    if failed:
        print("self-test: NOT refused:", failed)
    return failed


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--self-test":
        sys.exit(1 if self_test(sys.argv[2]) else 0)
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    paths = sys.argv[2:] or sorted(glob.glob(os.path.join(HERE, "*.json")))
    sys.exit(1 if check(sys.argv[1], paths) else 0)
