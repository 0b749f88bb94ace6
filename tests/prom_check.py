#!/usr/bin/env python3
"""prom_check.py - what a real Prometheus server scraped from posguard run.

  prom_check.py wait PROM_URL POSGUARD_URL OUT.json
      Wait until Prometheus has posguard as a healthy target, the run is
      ready (all partitions assigned and warmed up), it has processed every
      message (lag 0) and the counters have stopped moving (three scrapes
      alike); then ask the PromQL queries below and write their answers,
      and what /healthz, /readyz and the label API said, to OUT.json.
  prom_check.py compare OUT.json ACTUAL.jsonl RUN.log INPUT.jsonl
      Compare those answers with what the run committed (the alerts and
      refunds read back from the output topics, ACTUAL.jsonl), what its
      stop summary counted (RUN.log), and check that no label value is a
      card token, terminal id or transaction id of the input.
"""
import collections
import json
import re
import sys
import time
import urllib.parse
import urllib.request

QUERIES = {
    "alerts_by_finding": "sum by (finding) (posguard_alerts_total)",
    "alerts_by_rule_mode": "sum by (rule, mode) (posguard_alerts_total)",
    "refunds_by_reason": "sum by (reason) (posguard_refunds_total)",
    "refund_amount_by_currency": "sum by (currency) (posguard_refund_amount_total)",
    "consumed": "sum(posguard_records_consumed_total)",
    "rejected": "sum(posguard_records_rejected_total)",
    "lag": "sum(posguard_consumer_lag_records)",
    "assigned": "posguard_partitions_assigned",
    "ready": "posguard_ready",
    "committed_txns": 'sum(posguard_transactions_total{outcome="committed"})',
    "batches": "sum(posguard_batch_duration_seconds_count)",
    "consume_delays": "sum(posguard_consume_delay_seconds_count)",
    "commit_p99_ok": "histogram_quantile(0.99, sum by (le) "
                     "(posguard_transaction_commit_duration_seconds_bucket)) >= 0",
    "rules_info": "count(posguard_rules_info == 1)",
    "state_facts": 'sum(posguard_state_entries{table="facts"})',
    "up": 'up{job="posguard"}',
    "top_merchants": "posguard_top_merchant_alerts",
    "top_terminals": "posguard_top_merchant_alerting_terminals",
}


# ISO 4217 minor-unit exponents other than 2 (posguard exports amounts in
# the major unit)
EXPONENT = {c: 0 for c in "JPY KRW VND CLP ISK XOF XAF UGX PYG".split()}
EXPONENT.update({c: 3 for c in "BHD KWD OMR JOD TND IQD LYD".split()})


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def status_of(url):
    try:
        return get(url)[0]
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def query(prom, q):
    """Instant vector as {labels-tuple: value}; a scalar-like single series
    with no labels is keyed ()."""
    st, body = get(prom + "api/v1/query?" + urllib.parse.urlencode({"query": q}))
    res = json.loads(body)
    if res.get("status") != "success":
        raise RuntimeError(f"{q}: {body}")
    out = {}
    for s in res["data"]["result"]:
        key = tuple(sorted((k, v) for k, v in s["metric"].items()
                           if k not in ("__name__", "job", "instance")))
        out[key] = float(s["value"][1])
    return out


def one(prom, q):
    r = query(prom, q)
    return next(iter(r.values())) if r else None


def wait(prom, pg, out):
    deadline = time.time() + 180
    seen = []
    while time.time() < deadline:
        time.sleep(1)
        try:
            if one(prom, 'up{job="posguard"}') != 1:
                continue
            if one(prom, "posguard_ready") != 1:
                continue
            if one(prom, "sum(posguard_consumer_lag_records)") != 0:
                continue
            snap = (one(prom, "sum(posguard_records_consumed_total)"),
                    one(prom, "sum(posguard_alerts_total)"),
                    one(prom, "sum(posguard_refunds_total)"))
        except (OSError, RuntimeError) as e:
            print("prom_check: waiting:", e, file=sys.stderr)
            continue
        seen.append(snap)
        if len(seen) >= 4 and len(set(seen[-4:])) == 1 and snap[0]:
            break
    else:
        sys.exit(f"prom_check: timed out; last snapshots {seen[-4:]}")
    ans = {k: [[list(map(list, lab)), v] for lab, v in query(prom, q).items()]
           for k, q in QUERIES.items()}
    ans["healthz"] = status_of(pg + "healthz")
    ans["readyz"] = status_of(pg + "readyz")
    labels = json.loads(get(prom + "api/v1/labels")[1])["data"]
    ans["label_values"] = {
        name: json.loads(get(prom + f"api/v1/label/{name}/values")[1])["data"]
        for name in labels}
    json.dump(ans, open(out, "w"), indent=1)
    print(f"prom_check: settled after {len(seen)} scrapes: consumed "
          f"{seen[-1][0]:.0f}, alerts {seen[-1][1]:.0f}, refunds {seen[-1][2]:.0f}")


def by(ans, name, label):
    return {dict(lab).get(label, ""): v for lab, v in ans[name]}


def scalar(ans, name):
    vals = [v for _, v in ans[name]]
    return vals[0] if vals else None


def compare(path, actual, runlog, inp):
    ans = json.load(open(path))
    outs = [json.loads(line) for line in open(actual)]
    alerts = [o for o in outs if o["type"] == "alert"]
    refunds = [o for o in outs if o["type"] == "refund"]
    bad = []

    def check(what, got, want):
        ok = got == want
        print(f"  {'ok ' if ok else 'BAD'} {what}: prometheus {got}, known {want}")
        if not ok:
            bad.append(what)

    check("alerts by finding",
          {k: int(v) for k, v in by(ans, "alerts_by_finding", "finding").items()},
          dict(collections.Counter(a["finding"] for a in alerts)))
    check("alerts by rule and mode",
          {(dict(lab)["rule"], dict(lab)["mode"]): int(v)
           for lab, v in ans["alerts_by_rule_mode"]},
          dict(collections.Counter((a["rule_id"], a["mode"]) for a in alerts)))
    check("refunds by reason",
          {k: int(v) for k, v in by(ans, "refunds_by_reason", "reason").items()},
          dict(collections.Counter(f["reason"] for f in refunds)))
    want_amt = collections.defaultdict(int)
    for f in refunds:
        want_amt[f["currency"]] += f["amount"]
    check("refunded amount by currency (minor units)",
          {k: round(v * 10 ** EXPONENT.get(k, 2)) for k, v in
           by(ans, "refund_amount_by_currency", "currency").items()},
          dict(want_amt))
    stopped = [line for line in open(runlog)
               if "event=stopped" in line or '"event":"stopped"' in line][-1]
    summ = (json.loads(stopped) if stopped.startswith("{")
            else dict(re.findall(r"(\w+)=(\d+)", stopped)))
    check("records consumed (run summary)", int(scalar(ans, "consumed")),
          int(summ["consumed"]) - int(summ["warmup"]))
    # every message delivered (not a re-read after a rebuild) has its
    # Kafka timestamp's delay observed once
    check("consume delays observed (run summary)",
          int(scalar(ans, "consume_delays")),
          int(summ["consumed"]) - int(summ["warmup"]))
    check("records rejected (run summary)", int(scalar(ans, "rejected")),
          int(summ["rejected"]))
    check("consumer lag", scalar(ans, "lag"), 0.0)
    check("partitions assigned", scalar(ans, "assigned"), 4.0)
    check("ready", scalar(ans, "ready"), 1.0)
    check("rule sets in force", scalar(ans, "rules_info"), 1.0)
    check("/healthz", ans["healthz"], 200)
    check("/readyz", ans["readyz"], 200)
    check("transactions committed > 0", scalar(ans, "committed_txns") > 0, True)
    check("batches observed > 0", scalar(ans, "batches") > 0, True)
    check("commit p99 answered", bool(ans["commit_p99_ok"]), True)
    check("facts tracked > 0", scalar(ans, "state_facts") > 0, True)
    # the top merchants by committed alerts (all within the 15 minutes)
    per = collections.Counter(a["merchant_id"] for a in alerts)
    want_top = sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    got_top = sorted(((dict(lab)["merchant"], int(v), int(dict(lab)["rank"]))
                      for lab, v in ans["top_merchants"]), key=lambda x: x[2])
    check("top merchants by alerts", [(m, n) for m, n, _ in got_top], want_top)
    terms = collections.defaultdict(set)
    for a in alerts:
        terms[a["merchant_id"]].add(a["terminal_id"])
    check("their alerting terminals",
          {dict(lab)["merchant"]: int(v) for lab, v in ans["top_terminals"]},
          {m: min(len(terms[m]), 16) for m, _ in want_top})
    # no card, terminal or transaction id as a label value
    ids = set()
    for line in open(inp, encoding="utf-8", errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict):
            for k in ("card_token", "terminal_id", "txn_id", "pan_masked",
                      "rrn", "stan"):
                if isinstance(r.get(k), str) and r[k]:
                    ids.add(r[k])
    leaked = sorted({v for vs in ans["label_values"].values() for v in vs} & ids)
    check("identifiers among label values", leaked, [])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["wait"] and len(sys.argv) == 5:
        wait(*sys.argv[2:])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 6:
        compare(*sys.argv[2:])
    else:
        sys.exit(__doc__)
