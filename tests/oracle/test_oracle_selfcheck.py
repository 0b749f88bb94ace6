#!/usr/bin/python3
"""Self-check of the reference oracle on small hand-written scenarios.

    /usr/bin/python3 tests/oracle/test_oracle_selfcheck.py [-v] [TestName...]

Each scenario is a handful of literal JSON lines and the exact alerts and
refunds the contract (shared/DOMAIN.md, docs/SEMANTICS.md) requires.  Every
DOMAIN.md rule and boundary has a scenario.  Outputs are summarised as

    ("alert",  finding, "offending related...", severity, mode, amount)
    ("refund", txn_id, amount, reason)

and compared as sorted lists.  Exit status non-zero on any failure.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import oracle  # noqa: E402
import xxhash  # noqa: E402

# The reference rules (rules/default.yaml, copied so the test stands alone).
DEFAULT_RULES = """
version: "2026-11-23.1"
settings:
  allowed_lateness: 5s
  dedupe_horizon: 24h
  refund_delay: 120s
rules:
  - id: retry-duplicate
    detector: retry_duplicate
    severity: high
    action: refund
    mode: enforce
    params: {window: 15m}
  - id: repeated-swipe
    detector: repeated_swipe
    severity: medium
    action: refund
    mode: enforce
    params: {window: 120s, auto_refund_within: 60s}
  - id: amount-mismatch
    detector: amount_mismatch
    severity: high
    action: refund
    mode: enforce
    params: {tolerance: 0}
  - id: refund-anomaly
    detector: refund_anomaly
    severity: high
    action: alert
    mode: enforce
    params: {lookback: 30d}
  - id: card-testing
    detector: aggregate
    severity: medium
    action: alert
    mode: enforce
    params:
      where: "kind == purchase and status == declined"
      group_by: [card_token]
      function: count
      window: 10m
      threshold: 5
"""


def run(lines, rules=DEFAULT_RULES, **kw):
    """Run the oracle over literal JSON lines; -> (outputs, stats)."""
    cfg = oracle.parse_rules(rules)
    data = "\n".join(l.strip() for l in lines.strip().splitlines()).encode("utf-8") + b"\n"
    o = oracle.run(cfg, data, **kw)
    return o.output, o.stats()


def summary(outputs):
    rows = []
    for o in outputs:
        if o["type"] == "alert":
            rows.append(("alert", o["finding"], " ".join(o["txn_ids"]), o["severity"],
                         o["mode"], o["amount"]))
        else:
            rows.append(("refund", o["txn_id"], o["amount"], o["reason"]))
    return sorted(rows)


class Scenario(unittest.TestCase):
    maxDiff = None

    def expect(self, lines, expected, rules=DEFAULT_RULES, late=0, **kw):
        outputs, stats = run(lines, rules, **kw)
        self.assertEqual(summary(outputs), sorted(expected))
        self.assertEqual(stats["late"], late, "unexpected late records")
        return outputs, stats


# ---------------------------------------------------------------------------
# retry_duplicate
# ---------------------------------------------------------------------------

class RetryDuplicate(Scenario):
    def test_window_boundary(self):
        # p: exactly 15 min apart -> duplicate.  q: 15 min + 1 ms -> not.
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"q1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:15:00.000Z"}
{"txn_id":"q2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:15:00.001Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("refund", "p2", 1000, "duplicate")])

    def test_key_fields_must_all_match(self):
        # same stan but another terminal / amount / currency / card: nothing
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T2","stan":"000001","rrn":"r2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:03:00.000Z"}
{"txn_id":"p3","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r3","card_token":"tokA","amount":1001,"currency":"EUR","event_time":"2026-11-22T10:06:00.000Z"}
{"txn_id":"p4","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r4","card_token":"tokA","amount":1000,"currency":"USD","event_time":"2026-11-22T10:09:00.000Z"}
{"txn_id":"p5","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r5","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:12:00.000Z"}
{"txn_id":"p6","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r6","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:13:00.000Z"}
""", [])

    def test_equal_times_later_in_input_is_the_duplicate(self):
        self.expect("""
{"txn_id":"b","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rb","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"a","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"ra","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
""", [("alert", "retry_duplicate", "a b", "high", "enforce", 1000),
      ("refund", "a", 1000, "duplicate")])

    def test_mixed_time_forms(self):
        # integer ms and a +02:00 offset name the same instants as the Z form
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":1795341600000}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T12:15:00.000999+02:00"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("refund", "p2", 1000, "duplicate")])

    def test_related_at_most_eight_most_recent(self):
        lines = "\n".join(
            '{"txn_id":"p%02d","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1",'
            '"stan":"000001","rrn":"r%02d","card_token":"tokA","amount":1000,"currency":"EUR",'
            '"event_time":"2026-11-22T10:00:%02d.000Z"}' % (i, i, i) for i in range(1, 11))
        outputs, _ = run(lines)
        last = [o for o in outputs if o["type"] == "alert" and o["txn_ids"][0] == "p10"][0]
        self.assertEqual(last["txn_ids"], ["p10", "p02", "p03", "p04", "p05", "p06", "p07", "p08", "p09"])
        self.assertEqual(len([o for o in outputs if o["type"] == "refund"]), 9)


# ---------------------------------------------------------------------------
# Reorder buffer, lateness, transport dedupe
# ---------------------------------------------------------------------------

OUT_OF_ORDER = """
{"txn_id":"s2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rs2","card_token":"tokS","amount":500,"currency":"EUR","event_time":"2026-11-22T10:00:04.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:03.000Z"}
{"txn_id":"v1","kind":"void","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000009","rrn":"rv1","card_token":"tokS","amount":500,"currency":"EUR","original_rrn":"rs2","event_time":"2026-11-22T10:00:02.500Z"}
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:01.000Z"}
{"txn_id":"s1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rs1","card_token":"tokS","amount":500,"currency":"EUR","event_time":"2026-11-22T09:59:59.000Z"}
"""


class Ordering(Scenario):
    def test_out_of_order_within_lateness_equals_sorted(self):
        expected = [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
                    ("refund", "p2", 1000, "duplicate"),
                    # s2 is flagged, then found cancelled at its decision: no refund
                    ("alert", "repeated_swipe", "s2 s1", "medium", "enforce", 500)]
        out_of_order, stats = self.expect(OUT_OF_ORDER, expected)
        self.assertEqual(stats["late"], 0)
        lines = [l for l in OUT_OF_ORDER.strip().splitlines()]
        in_order = sorted(lines, key=lambda l: oracle.parse_rfc3339(json.loads(l)["event_time"]))
        sorted_out, _ = run("\n".join(in_order))
        canon = lambda outs: sorted(json.dumps(o, sort_keys=True) for o in outs)
        self.assertEqual(canon(out_of_order), canon(sorted_out))

    def test_late_record_counted_and_processed(self):
        # p2 arrives after x (t=20 s): 10 s < 20 s - 5 s, late, still paired.
        _, stats = self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"x","kind":"purchase","status":"approved","merchant_id":"M2","terminal_id":"T9","stan":"000007","rrn":"rx","card_token":"tokX","amount":70,"currency":"EUR","event_time":"2026-11-22T10:00:20.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("refund", "p2", 1000, "duplicate")], late=1)

    def test_lateness_boundary(self):
        # q1 at exactly W = max_t - 5 s is on time (reordered: q2 is the dup).
        # y (10:00:40) releases k2 (34.9995 s, truncated to 34.999 s < W = 35 s);
        # k1 (34.998 s) then arrives late: best effort.  k1 is earlier than k2
        # in event time and k2 was processed before k1 existed: the pair is lost.
        _, stats = self.expect("""
{"txn_id":"q2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rq2","card_token":"tokQ","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:30.000Z"}
{"txn_id":"q1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rq1","card_token":"tokQ","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:25.000Z"}
{"txn_id":"k2","kind":"purchase","status":"approved","merchant_id":"M2","terminal_id":"T2","stan":"000001","rrn":"rk2","card_token":"tokK","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:34.9995Z"}
{"txn_id":"y","kind":"purchase","status":"approved","merchant_id":"M3","terminal_id":"T3","stan":"000001","rrn":"ry","card_token":"tokY","amount":5,"currency":"EUR","event_time":"2026-11-22T10:00:40.000Z"}
{"txn_id":"k1","kind":"purchase","status":"approved","merchant_id":"M2","terminal_id":"T2","stan":"000001","rrn":"rk1","card_token":"tokK","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:34.998Z"}
""", [("alert", "retry_duplicate", "q2 q1", "high", "enforce", 1000),
      ("refund", "q2", 1000, "duplicate")], late=1)

    def test_release_is_strict(self):
        # x at 10:00:05 makes W = 10:00:00; q2 (t = W) must stay buffered so
        # that the void of q1 arriving next, with the same time, is in q2's
        # group: q1 is cancelled at t(q2), no pairing.
        self.expect("""
{"txn_id":"q1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T09:59:58.000Z"}
{"txn_id":"q2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"x","kind":"purchase","status":"approved","merchant_id":"M2","terminal_id":"T9","stan":"000007","rrn":"rx","card_token":"tokX","amount":70,"currency":"EUR","event_time":"2026-11-22T10:00:05.000Z"}
{"txn_id":"vq","kind":"void","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rvq","card_token":"tokB","amount":1000,"currency":"EUR","original_rrn":"rq1","event_time":"2026-11-22T10:00:00.000Z"}
""", [])

    def test_transport_duplicate_dropped(self):
        # p1 again (other fields changed) is dropped, also 24 h - 1 ms later.
        # x1 again when the stream is exactly 24 h past its first arrival is
        # a new record (its overcharge alerts): SEMANTICS 2.
        _, stats = self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"r1b","card_token":"tokA","amount":1000,"currency":"EUR","expected_amount":1,"event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"x1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"rx1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:20.000Z"}
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR","expected_amount":1,"event_time":"2026-11-23T09:59:59.999Z"}
{"txn_id":"x1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"rx1","card_token":"tokB","amount":1000,"currency":"EUR","expected_amount":999,"event_time":"2026-11-23T10:00:20.000Z"}
""", [("alert", "overcharge", "x1", "high", "enforce", 1000),
      ("refund", "x1", 1, "overcharge")])
        self.assertEqual(stats["duplicates"], 2)
        self.assertEqual(stats["lines"], 5)

    def test_duplicate_does_not_move_max_t(self):
        # the dropped copy at 10:01 must not make p2 (10:00:10) late
        _, stats = self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:01:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("refund", "p2", 1000, "duplicate")])
        self.assertEqual((stats["duplicates"], stats["late"]), (1, 0))


# ---------------------------------------------------------------------------
# repeated_swipe
# ---------------------------------------------------------------------------

class RepeatedSwipe(Scenario):
    def test_chain_of_three(self):
        self.expect("""
{"txn_id":"s1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"s2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T2","stan":"000002","rrn":"r2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:30.000Z"}
{"txn_id":"s3","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"r3","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:50.000Z"}
""", [("alert", "repeated_swipe", "s2 s1", "medium", "enforce", 1000),
      ("alert", "repeated_swipe", "s3 s1 s2", "medium", "enforce", 1000),
      ("refund", "s2", 1000, "duplicate"),
      ("refund", "s3", 1000, "duplicate")])

    def test_auto_refund_boundary_60s(self):
        self.expect("""
{"txn_id":"a1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"ra1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"b1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rb1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"a2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"ra2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:01:00.000Z"}
{"txn_id":"b2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000004","rrn":"rb2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:01:00.001Z"}
""", [("alert", "repeated_swipe", "a2 a1", "medium", "enforce", 1000),
      ("refund", "a2", 1000, "duplicate"),
      ("alert", "repeated_swipe", "b2 b1", "medium", "enforce", 1000)])

    def test_window_boundary_120s(self):
        self.expect("""
{"txn_id":"c1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rc1","card_token":"tokC","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"d1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rd1","card_token":"tokD","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"c2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"rc2","card_token":"tokC","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:02:00.000Z"}
{"txn_id":"d2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000004","rrn":"rd2","card_token":"tokD","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:02:00.001Z"}
""", [("alert", "repeated_swipe", "c2 c1", "medium", "enforce", 1000)])

    def test_equal_times_are_not_a_swipe(self):
        # 0 < t2 - t1 is strict for repeated_swipe
        self.expect("""
{"txn_id":"e1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"re1","card_token":"tokE","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"e2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T2","stan":"000002","rrn":"re2","card_token":"tokE","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
""", [])

    def test_order_ids(self):
        # e: different order_ids -> nothing.  f: same order_id -> refund even
        # after 60 s.  g: only one carries an order_id -> alert, no refund.
        self.expect("""
{"txn_id":"e1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"re1","card_token":"tokE","amount":1000,"currency":"EUR","order_id":"o1","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"f1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"rf1","card_token":"tokF","amount":1000,"currency":"EUR","order_id":"o3","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"g1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000005","rrn":"rg1","card_token":"tokG","amount":1000,"currency":"EUR","order_id":"o5","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"e2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"re2","card_token":"tokE","amount":1000,"currency":"EUR","order_id":"o2","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"g2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000006","rrn":"rg2","card_token":"tokG","amount":1000,"currency":"EUR","order_id":null,"event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"f2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T2","stan":"000004","rrn":"rf2","card_token":"tokF","amount":1000,"currency":"EUR","order_id":"o3","event_time":"2026-11-22T10:01:30.000Z"}
""", [("alert", "repeated_swipe", "f2 f1", "medium", "enforce", 1000),
      ("refund", "f2", 1000, "duplicate"),
      ("alert", "repeated_swipe", "g2 g1", "medium", "enforce", 1000)])


# ---------------------------------------------------------------------------
# Cancellations, manual refunds and the decision time
# ---------------------------------------------------------------------------

class Cancellation(Scenario):
    def test_cancelled_before_later_charge_no_pairing(self):
        # p1 reversed before p2; q1 voided at exactly t(q2), after q2 in input
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"q1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"rv","kind":"reversal","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rrv","card_token":"tokA","amount":1000,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:00:05.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"q2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"vq","kind":"void","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rvq","card_token":"tokB","amount":1000,"currency":"EUR","original_rrn":"rq1","event_time":"2026-11-22T10:00:10.000Z"}
""", [])

    def test_declined_reversal_does_not_cancel(self):
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"rv","kind":"reversal","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rrv","card_token":"tokA","amount":1000,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:00:05.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("refund", "p2", 1000, "duplicate")])

    def test_cancelled_after_alert_before_decision(self):
        # p1 (the earlier) reversed; q2 (the charge itself) voided
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"q1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"q2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"rv","kind":"reversal","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rrv","card_token":"tokA","amount":1000,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:01:00.000Z"}
{"txn_id":"vq","kind":"void","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rvq","card_token":"tokB","amount":1000,"currency":"EUR","original_rrn":"rq2","event_time":"2026-11-22T10:01:00.000Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("alert", "retry_duplicate", "q2 q1", "high", "enforce", 1000)])

    def test_cancellation_at_decision_time(self):
        # D = 10:02:10.000.  p1 reversed at D: counts, no refund.
        # q1 reversed 1 ms after D: too late, q2 is refunded.
        outputs, _ = self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"q1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"q2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"rv","kind":"reversal","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rrv","card_token":"tokA","amount":1000,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:02:10.000Z"}
{"txn_id":"rq","kind":"reversal","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rrq","card_token":"tokB","amount":1000,"currency":"EUR","original_rrn":"rq1","event_time":"2026-11-22T10:02:10.001Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("alert", "retry_duplicate", "q2 q1", "high", "enforce", 1000),
      ("refund", "q2", 1000, "duplicate")])
        refund = [o for o in outputs if o["type"] == "refund"][0]
        self.assertEqual(refund["decided_at"], "2026-11-22T10:02:10.000Z")

    def test_cancellation_of_one_of_two_earlier_charges(self):
        # p3 qualifies by p1 and p2; p1 reversed before D, p2 still stands
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:05.000Z"}
{"txn_id":"p3","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp3","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"rv","kind":"reversal","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rrv","card_token":"tokA","amount":1000,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:01:00.000Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("alert", "retry_duplicate", "p3 p1 p2", "high", "enforce", 1000),
      # p2's only partner p1 is reversed at 10:01 <= D(p2) = 10:02:05: no refund
      ("refund", "p3", 1000, "duplicate")])

    def test_manual_refunds_before_decision(self):
        # p2: 300 refunded by hand before D -> engine refunds 700.
        # q2: 300 refunded at exactly D -> counts too.
        # s2: fully refunded by hand -> no command.
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"q1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"s1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"rs1","card_token":"tokC","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"q2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"s2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"rs2","card_token":"tokC","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"fp","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000011","rrn":"rfp","card_token":"tokA","amount":300,"currency":"EUR","original_rrn":"rp2","event_time":"2026-11-22T10:01:00.000Z"}
{"txn_id":"fs","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000013","rrn":"rfs","card_token":"tokC","amount":1000,"currency":"EUR","original_rrn":"rs2","event_time":"2026-11-22T10:01:00.000Z"}
{"txn_id":"fq","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000012","rrn":"rfq","card_token":"tokB","amount":300,"currency":"EUR","original_rrn":"rq2","event_time":"2026-11-22T10:02:10.000Z"}
{"txn_id":"ft","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000014","rrn":"rft","card_token":"tokC","amount":1000,"currency":"EUR","original_rrn":"rs1","event_time":"2026-11-22T10:02:10.001Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("alert", "retry_duplicate", "q2 q1", "high", "enforce", 1000),
      ("alert", "retry_duplicate", "s2 s1", "high", "enforce", 1000),
      ("refund", "p2", 700, "duplicate"),
      ("refund", "q2", 700, "duplicate"),
      # s1 refunded by hand after D(s2): irrelevant to s2's decision
      ])


# ---------------------------------------------------------------------------
# amount_mismatch
# ---------------------------------------------------------------------------

class AmountMismatch(Scenario):
    def test_over_and_undercharge_severity(self):
        self.expect("""
{"txn_id":"x10","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":10000,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"x100","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"r2","card_token":"tokB","amount":100000,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"plus1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"r3","card_token":"tokC","amount":1001,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"under","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000004","rrn":"r4","card_token":"tokD","amount":900,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"under10","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000005","rrn":"r5","card_token":"tokE","amount":100,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"zero","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000006","rrn":"r6","card_token":"tokF","amount":100,"currency":"EUR","expected_amount":0,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"x20","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000007","rrn":"r7","card_token":"tokG","amount":2000,"currency":"EUR","expected_amount":100,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"same","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000008","rrn":"r8","card_token":"tokH","amount":1000,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"decl","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"000009","rrn":"r9","card_token":"tokI","amount":10000,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
""", [("alert", "overcharge", "x10", "critical", "enforce", 10000),
      ("refund", "x10", 9000, "overcharge"),
      ("alert", "overcharge", "x100", "critical", "enforce", 100000),
      ("refund", "x100", 99000, "overcharge"),
      ("alert", "overcharge", "plus1", "high", "enforce", 1001),
      ("refund", "plus1", 1, "overcharge"),
      ("alert", "undercharge", "under", "high", "enforce", 900),
      ("alert", "undercharge", "under10", "critical", "enforce", 100),
      ("alert", "overcharge", "zero", "high", "enforce", 100),
      ("refund", "zero", 100, "overcharge"),
      ("alert", "overcharge", "x20", "high", "enforce", 2000),
      ("refund", "x20", 1900, "overcharge")])

    def test_tolerance(self):
        rules = DEFAULT_RULES.replace("{tolerance: 0}", "{tolerance: 5}")
        self.expect("""
{"txn_id":"d5","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":1005,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"d6","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"r2","card_token":"tokB","amount":1006,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"u6","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"r3","card_token":"tokC","amount":994,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
""", [("alert", "overcharge", "d6", "high", "enforce", 1006),
      ("refund", "d6", 6, "overcharge"),
      ("alert", "undercharge", "u6", "high", "enforce", 994)], rules=rules)

    def test_overcharged_duplicate_gets_one_full_refund(self):
        outputs, _ = self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","expected_amount":900,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","expected_amount":900,"event_time":"2026-11-22T10:00:10.000Z"}
""", [("alert", "overcharge", "p1", "high", "enforce", 1000),
      ("refund", "p1", 100, "overcharge"),
      ("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("alert", "overcharge", "p2", "high", "enforce", 1000),
      ("refund", "p2", 1000, "duplicate")])
        refund = [o for o in outputs if o["type"] == "refund" and o["txn_id"] == "p2"][0]
        self.assertEqual(refund["rule_id"], "retry-duplicate")
        self.assertEqual(refund["alert_id"], oracle.alert_id("retry-duplicate", "retry_duplicate", "p2"))

    def test_duplicate_partner_cancelled_falls_back_to_overcharge(self):
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","expected_amount":900,"event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"rv","kind":"reversal","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rrv","card_token":"tokA","amount":1000,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:01:00.000Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("alert", "overcharge", "p2", "high", "enforce", 1000),
      ("refund", "p2", 100, "overcharge")])


# ---------------------------------------------------------------------------
# refund_anomaly
# ---------------------------------------------------------------------------

class RefundAnomaly(Scenario):
    def test_exceeds_card_mismatch_without_original(self):
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"f1","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rf1","card_token":"tokA","amount":600,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:10:00.000Z"}
{"txn_id":"f2","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"rf2","card_token":"tokA","amount":500,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:20:00.000Z"}
{"txn_id":"f3","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000004","rrn":"rf3","card_token":"tokZ","amount":10,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:30:00.000Z","pan_masked":"622848******1234"}
{"txn_id":"f4","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000005","rrn":"rf4","card_token":"tokA","amount":10,"currency":"EUR","original_rrn":"nosuch","event_time":"2026-11-22T10:40:00.000Z"}
{"txn_id":"f5","kind":"refund","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"000006","rrn":"rf5","card_token":"tokB","amount":5000,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:50:00.000Z"}
""", [("alert", "refund_exceeds_original", "f2 p1", "high", "enforce", 500),
      ("alert", "refund_exceeds_original", "f3 p1", "high", "enforce", 10),
      ("alert", "refund_card_mismatch", "f3 p1", "high", "enforce", 10),
      ("alert", "refund_without_original", "f4", "high", "enforce", 10)])

    def test_lookback_boundary_and_same_time(self):
        # p1 exactly 30 d before f1: known.  p2 30 d + 1 ms: without original.
        # p3 at the same time as f3, after it in input: known.
        # p4 after f4 in event time: without original.
        outputs, _ = self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-10-23T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rp2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-10-23T09:59:59.999Z"}
{"txn_id":"f1","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"rf1","card_token":"tokA","amount":10,"currency":"EUR","original_rrn":"rp1","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"f2","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000004","rrn":"rf2","card_token":"tokB","amount":10,"currency":"EUR","original_rrn":"rp2","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"f3","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000005","rrn":"rf3","card_token":"tokA","amount":10,"currency":"EUR","original_rrn":"rp3","event_time":"2026-11-22T11:00:00.000Z"}
{"txn_id":"p3","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000006","rrn":"rp3","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T11:00:00.000Z"}
{"txn_id":"f4","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000007","rrn":"rf4","card_token":"tokA","amount":10,"currency":"EUR","original_rrn":"rp4","event_time":"2026-11-22T12:00:00.000Z"}
{"txn_id":"p4","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000008","rrn":"rp4","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T12:00:01.000Z"}
""", [("alert", "refund_without_original", "f2", "high", "enforce", 10),
      ("alert", "refund_without_original", "f4", "high", "enforce", 10)])

    def test_exceeds_counts_engine_refund_decided_before(self):
        # p2 refunded by the engine at D = 10:02:10.000 (1000).
        # f1 at 10:02:10.001 on p2: 1 + 1000 > 1000 -> exceeds.
        # q2: manual refund g1 at exactly D(q2): D < t(g1) false, so only
        # g1 counts (no alert) and the engine refunds 999.
        self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"q1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"q2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rq2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"g1","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000012","rrn":"rg1","card_token":"tokB","amount":1,"currency":"EUR","original_rrn":"rq2","event_time":"2026-11-22T10:02:10.000Z"}
{"txn_id":"f1","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000011","rrn":"rf1","card_token":"tokA","amount":1,"currency":"EUR","original_rrn":"rp2","event_time":"2026-11-22T10:02:10.001Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("alert", "retry_duplicate", "q2 q1", "high", "enforce", 1000),
      ("refund", "p2", 1000, "duplicate"),
      ("refund", "q2", 999, "duplicate"),
      ("alert", "refund_exceeds_original", "f1 p2", "high", "enforce", 1)])


    def test_late_refund_at_decision_time_excludes_engine_refund(self):
        # p2 is refunded by the engine at D = 10:02:10 when y (10:02:12) is
        # released.  f1 at exactly D arrives late: D < t(f1) is false, so the
        # engine's 1000 does not count: 1 <= 1000, no alert.  f2 (1 ms later,
        # also late) counts it: 1 + 1 + 1000 > 1000.
        _, stats = self.expect("""
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z"}
{"txn_id":"y","kind":"purchase","status":"approved","merchant_id":"M2","terminal_id":"T9","stan":"000007","rrn":"ry","card_token":"tokY","amount":70,"currency":"EUR","event_time":"2026-11-22T10:02:12.000Z"}
{"txn_id":"z","kind":"purchase","status":"approved","merchant_id":"M3","terminal_id":"T8","stan":"000008","rrn":"rz","card_token":"tokZ","amount":70,"currency":"EUR","event_time":"2026-11-22T10:02:30.000Z"}
{"txn_id":"f1","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000011","rrn":"rf1","card_token":"tokA","amount":1,"currency":"EUR","original_rrn":"rp2","event_time":"2026-11-22T10:02:10.000Z"}
{"txn_id":"f2","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000012","rrn":"rf2","card_token":"tokA","amount":1,"currency":"EUR","original_rrn":"rp2","event_time":"2026-11-22T10:02:10.001Z"}
""", [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
      ("refund", "p2", 1000, "duplicate"),
      ("alert", "refund_exceeds_original", "f2 p2", "high", "enforce", 1)], late=2)

    def test_overcharge_shrinks_by_manual_refund(self):
        self.expect("""
{"txn_id":"x10","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":10000,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"f1","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000002","rrn":"rf1","card_token":"tokA","amount":1000,"currency":"EUR","original_rrn":"r1","event_time":"2026-11-22T10:01:00.000Z"}
{"txn_id":"y10","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000003","rrn":"r3","card_token":"tokB","amount":10000,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:01:10.000Z"}
{"txn_id":"g1","kind":"refund","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000004","rrn":"rg1","card_token":"tokB","amount":9500,"currency":"EUR","original_rrn":"r3","event_time":"2026-11-22T10:02:00.000Z"}
""", [("alert", "overcharge", "x10", "critical", "enforce", 10000),
      ("refund", "x10", 8000, "overcharge"),
      ("alert", "overcharge", "y10", "critical", "enforce", 10000)])


# ---------------------------------------------------------------------------
# Modes, actions, guard rails
# ---------------------------------------------------------------------------

TWO_DUPLICATES = """
{"txn_id":"p1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp1","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"p2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"rp2","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:10.000Z","pan_masked":"622848******1234"}
{"txn_id":"q1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T2","stan":"000002","rrn":"rq1","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:20.000Z"}
{"txn_id":"q2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T2","stan":"000002","rrn":"rq2","card_token":"tokB","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:30.000Z"}
{"txn_id":"u1","kind":"purchase","status":"approved","merchant_id":"M2","terminal_id":"T3","stan":"000003","rrn":"ru1","card_token":"tokC","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:40.000Z"}
{"txn_id":"u2","kind":"purchase","status":"approved","merchant_id":"M2","terminal_id":"T3","stan":"000003","rrn":"ru2","card_token":"tokC","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:00:50.000Z"}
{"txn_id":"w1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000004","rrn":"rw1","card_token":"tokD","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:58:00.000Z"}
{"txn_id":"w2","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000004","rrn":"rw2","card_token":"tokD","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:58:10.000Z"}
"""
DUP_ALERTS = [("alert", "retry_duplicate", "p2 p1", "high", "enforce", 1000),
              ("alert", "retry_duplicate", "q2 q1", "high", "enforce", 1000),
              ("alert", "retry_duplicate", "u2 u1", "high", "enforce", 1000),
              ("alert", "retry_duplicate", "w2 w1", "high", "enforce", 1000)]


class ModesAndGuardRails(Scenario):
    def test_shadow_mode(self):
        rules = DEFAULT_RULES.replace("severity: high\n    action: refund\n    mode: enforce\n    params: {window: 15m}",
                                      "severity: high\n    action: refund\n    mode: shadow\n    params: {window: 15m}")
        self.assertNotEqual(rules, DEFAULT_RULES)
        self.expect(TWO_DUPLICATES, [(a[0], a[1], a[2], a[3], "shadow", a[5]) for a in DUP_ALERTS],
                    rules=rules)

    def test_action_alert(self):
        rules = DEFAULT_RULES.replace("action: refund\n    mode: enforce\n    params: {window: 15m}",
                                      "action: alert\n    mode: enforce\n    params: {window: 15m}")
        self.assertNotEqual(rules, DEFAULT_RULES)
        self.expect(TWO_DUPLICATES, DUP_ALERTS, rules=rules)

    def test_mode_off_and_disabled(self):
        rules = DEFAULT_RULES.replace("mode: enforce\n    params: {window: 15m}", "mode: off\n    params: {window: 15m}")
        self.expect(TWO_DUPLICATES, [], rules=rules)
        rules = DEFAULT_RULES.replace("mode: enforce\n    params: {window: 15m}",
                                      "mode: enforce\n    enabled: false\n    params: {window: 15m}")
        self.expect(TWO_DUPLICATES, [], rules=rules)

    def test_no_caps_all_refunded(self):
        self.expect(TWO_DUPLICATES, DUP_ALERTS + [("refund", t, 1000, "duplicate")
                                                  for t in ("p2", "q2", "u2", "w2")])

    def test_merchant_cap(self):
        # M1 in the hour 10:00: p2 (1000) fits 1500, q2 would make 2000 -> blocked.
        # w2 is decided at 11:00:10, another hour -> refunded.  M2 unaffected.
        outputs, stats = self.expect(TWO_DUPLICATES, DUP_ALERTS + [
            ("refund", "p2", 1000, "duplicate"),
            ("alert", "refund_blocked", "q2 q1", "critical", "enforce", 1000),
            ("refund", "u2", 1000, "duplicate"),
            ("refund", "w2", 1000, "duplicate")], cap_merchant=1500)
        blocked = [o for o in outputs if o.get("finding") == "refund_blocked"][0]
        self.assertEqual(blocked["alert_id"], oracle.alert_id("retry-duplicate", "refund_blocked", "q2"))
        self.assertEqual(blocked["rule_id"], "retry-duplicate")
        self.assertEqual(blocked["detector"], "retry_duplicate")
        self.assertEqual(blocked["event_time"], "2026-11-22T10:00:30.000Z")
        self.assertEqual(stats["alerts"]["refund_blocked"], 1)
        # at exactly the cap: allowed
        self.expect(TWO_DUPLICATES, DUP_ALERTS + [("refund", t, 1000, "duplicate")
                                                  for t in ("p2", "q2", "u2", "w2")], cap_merchant=2000)

    def test_global_cap_per_currency(self):
        # global 2500 per currency-hour: p2, q2 (M1) fit, u2 (M2) makes 3000.
        self.expect(TWO_DUPLICATES, DUP_ALERTS + [
            ("refund", "p2", 1000, "duplicate"),
            ("refund", "q2", 1000, "duplicate"),
            ("alert", "refund_blocked", "u2 u1", "critical", "enforce", 1000),
            ("refund", "w2", 1000, "duplicate")], cap_global=2500)
        usd = TWO_DUPLICATES.replace('"rq1","card_token":"tokB","amount":1000,"currency":"EUR"',
                                     '"rq1","card_token":"tokB","amount":1000,"currency":"USD"') \
                            .replace('"rq2","card_token":"tokB","amount":1000,"currency":"EUR"',
                                     '"rq2","card_token":"tokB","amount":1000,"currency":"USD"')
        self.expect(usd, DUP_ALERTS + [("refund", t, 1000, "duplicate") for t in ("p2", "q2", "u2", "w2")],
                    cap_global=2000)

    def test_kill_switch(self):
        outputs, stats = self.expect(TWO_DUPLICATES, DUP_ALERTS + [
            ("alert", "refund_blocked", "p2 p1", "critical", "enforce", 1000),
            ("alert", "refund_blocked", "q2 q1", "critical", "enforce", 1000),
            ("alert", "refund_blocked", "u2 u1", "critical", "enforce", 1000),
            ("alert", "refund_blocked", "w2 w1", "critical", "enforce", 1000)], kill_switch=True)
        blocked = [o for o in outputs if o.get("finding") == "refund_blocked" and o["txn_ids"][0] == "p2"][0]
        self.assertEqual(blocked["pan_masked"], "622848******1234")
        self.assertEqual(stats["refunds"], 0)

    def test_blocked_overcharge(self):
        self.expect("""
{"txn_id":"x10","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"000001","rrn":"r1","card_token":"tokA","amount":10000,"currency":"EUR","expected_amount":1000,"event_time":"2026-11-22T10:00:00.000Z"}
""", [("alert", "overcharge", "x10", "critical", "enforce", 10000),
      ("alert", "refund_blocked", "x10", "critical", "enforce", 9000)], kill_switch=True)


# ---------------------------------------------------------------------------
# aggregate and the where filter
# ---------------------------------------------------------------------------

def declined(txn, time, card="tokT", merchant="M1", amount=100):
    return ('{"txn_id":"%s","kind":"purchase","status":"declined","merchant_id":"%s","terminal_id":"T1",'
            '"stan":"%s","rrn":"r%s","card_token":"%s","amount":%d,"currency":"EUR","event_time":"%s"}'
            % (txn, merchant, txn, txn, card, amount, time))


class Aggregate(Scenario):
    def test_crossing_and_rearming(self):
        # card-testing: 5 declines of one card within 10 min.
        # d5 crosses; d6 stays above (no alert).  At 10:14:00.001 only d6 is
        # in the window: re-armed; d10 crosses again.
        self.expect("""
{"txn_id":"d1","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"1","rrn":"r1","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"d2","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"2","rrn":"r2","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:01:00.000Z"}
{"txn_id":"x1","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"9","rrn":"r9","card_token":"tokOther","amount":100,"currency":"EUR","event_time":"2026-11-22T10:01:30.000Z"}
{"txn_id":"a1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"8","rrn":"r8","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:01:40.000Z"}
{"txn_id":"d3","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"3","rrn":"r3","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:02:00.000Z"}
{"txn_id":"d4","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"4","rrn":"r4","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:03:00.000Z"}
{"txn_id":"d5","kind":"purchase","status":"declined","merchant_id":"M2","terminal_id":"T2","stan":"5","rrn":"r5","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:04:00.000Z"}
{"txn_id":"d6","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"6","rrn":"r6","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:05:00.000Z"}
{"txn_id":"d7","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"7","rrn":"r7","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:14:00.001Z"}
{"txn_id":"d8","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"10","rrn":"r10","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:14:01.000Z"}
{"txn_id":"d9","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"11","rrn":"r11","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:14:02.000Z"}
{"txn_id":"d10","kind":"purchase","status":"declined","merchant_id":"M1","terminal_id":"T1","stan":"12","rrn":"r12","card_token":"tokT","amount":100,"currency":"EUR","event_time":"2026-11-22T10:14:03.000Z"}
""", [("alert", "card-testing", "d5", "medium", "enforce", 100),
      ("alert", "card-testing", "d10", "medium", "enforce", 100)])

    def test_rearm_when_value_fell_below_between_records(self):
        # d1..d5 cross at 10:04.  d1 leaves the window at 10:10:00.001, so at
        # d6 (10:10:00.500) the value had fallen to 4: re-armed, and d6
        # brings it back to 5: a second alert.
        lines = "\n".join([declined("d1", "2026-11-22T10:00:00.000Z"),
                           declined("d2", "2026-11-22T10:01:00.000Z"),
                           declined("d3", "2026-11-22T10:02:00.000Z"),
                           declined("d4", "2026-11-22T10:03:00.000Z"),
                           declined("d5", "2026-11-22T10:04:00.000Z"),
                           declined("d6", "2026-11-22T10:10:00.500Z")])
        self.expect(lines, [("alert", "card-testing", "d5", "medium", "enforce", 100),
                            ("alert", "card-testing", "d6", "medium", "enforce", 100)])

    def test_window_edges(self):
        # the window is [t - 10 min, t]: d1 at exactly 10 min before d5 counts
        lines = "\n".join([declined("d1", "2026-11-22T10:00:00.000Z"),
                           declined("e1", "2026-11-22T10:00:00.000Z", card="tokU"),
                           declined("d2", "2026-11-22T10:05:00.000Z"),
                           declined("e2", "2026-11-22T10:05:00.000Z", card="tokU"),
                           declined("d3", "2026-11-22T10:06:00.000Z"),
                           declined("e3", "2026-11-22T10:06:00.000Z", card="tokU"),
                           declined("d4", "2026-11-22T10:07:00.000Z"),
                           declined("e4", "2026-11-22T10:07:00.000Z", card="tokU"),
                           declined("d5", "2026-11-22T10:10:00.000Z"),
                           declined("e5", "2026-11-22T10:10:00.001Z", card="tokU")])
        self.expect(lines, [("alert", "card-testing", "d5", "medium", "enforce", 100)])

    def test_sum_and_distinct(self):
        rules = """
version: v7
rules:
  - id: big-spender
    detector: aggregate
    params: {where: "status == approved and kind in [purchase]", group_by: card_token,
             function: sum, window: 1h, threshold: 5000}
  - id: many-merchants
    detector: aggregate
    severity: high
    mode: shadow
    params: {where: "not retransmission and entry_mode != ecom", group_by: [card_token, currency],
             function: distinct, field: merchant_id, window: 1h, threshold: 3}
"""
        outputs, _ = self.expect("""
{"txn_id":"a","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"1","rrn":"r1","card_token":"tokA","amount":2000,"currency":"EUR","event_time":"2026-11-22T10:00:00.000Z"}
{"txn_id":"b","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1","stan":"2","rrn":"r2","card_token":"tokA","amount":2000,"currency":"EUR","event_time":"2026-11-22T10:10:00.000Z","entry_mode":"chip"}
{"txn_id":"c","kind":"purchase","status":"approved","merchant_id":"M2","terminal_id":"T1","stan":"3","rrn":"r3","card_token":"tokA","amount":1000,"currency":"EUR","event_time":"2026-11-22T10:20:00.000Z","entry_mode":"ecom"}
{"txn_id":"d","kind":"purchase","status":"approved","merchant_id":"M2","terminal_id":"T1","stan":"4","rrn":"r4","card_token":"tokA","amount":1,"currency":"EUR","event_time":"2026-11-22T10:25:00.000Z","retransmission":true}
{"txn_id":"e","kind":"purchase","status":"declined","merchant_id":"M3","terminal_id":"T1","stan":"5","rrn":"r5","card_token":"tokA","amount":9999,"currency":"EUR","event_time":"2026-11-22T10:30:00.000Z","retransmission":false}
{"txn_id":"f","kind":"purchase","status":"declined","merchant_id":"M4","terminal_id":"T1","stan":"6","rrn":"r6","card_token":"tokA","amount":9999,"currency":"EUR","event_time":"2026-11-22T10:31:00.000Z"}
{"txn_id":"g","kind":"purchase","status":"declined","merchant_id":"M5","terminal_id":"T1","stan":"7","rrn":"r7","card_token":"tokA","amount":9999,"currency":"EUR","event_time":"2026-11-22T10:32:00.000Z"}
""", [("alert", "big-spender", "c", "medium", "enforce", 1000),
      ("alert", "many-merchants", "f", "high", "shadow", 9999)], rules=rules)
        self.assertEqual({o["rule_version"] for o in outputs}, {"v7"})

    def test_where_language(self):
        rec = oracle.validate(
            b'{"txn_id":"t1","kind":"refund","status":"approved","merchant_id":"M-1","terminal_id":"T1",'
            b'"stan":"007","rrn":"r1","card_token":"tokA","amount":1500,"currency":"EUR",'
            b'"original_rrn":"r0","event_time":"2026-11-22T10:00:00.000Z","retransmission":true}')
        cases = [
            ("kind == refund", True), ("kind == 'refund'", True), ('kind == "purchase"', False),
            ("kind in [purchase, refund]", True), ("kind not in [purchase, refund]", False),
            ("amount > 1000 and amount <= 1500", True), ("amount < 1500", False),
            ("amount >= 1500 and not (currency == USD or currency == GBP)", True),
            ("merchant_id == M-1", True), ("stan == '007'", True), ("stan == 7", False),
            ("retransmission", True), ("not retransmission", False), ("retransmission == false", False),
            ("order_id", False), ("not order_id", True),                       # absent optional
            ("order_id == x", False), ("order_id != x", True), ("order_id < x", False),
            ("order_id in [x]", False), ("order_id not in [x]", True),
            ("expected_amount > 0", False), ("expected_amount != 0", True),
            ("pan_masked", False), ("original_rrn", True), ("entry_mode == chip", False),
            ("status == approved or status == declined and kind == purchase", True),   # and binds tighter
            ("(status == approved or status == declined) and kind == purchase", False),
            ("event_time >= '2026-11-22T10:00:00.000Z'", True), ("event_time < 1795341600000", False),
            ("not not kind == refund", True),
        ]
        for text, want in cases:
            self.assertEqual(oracle.compile_where(text)(rec), want, text)
        for bad in ("nosuch == 1", "amount == abc", "kind ==", "(kind == refund", "kind in []",
                    "retransmission > true"):
            with self.assertRaises(oracle.RulesError, msg=bad):
                oracle.compile_where(bad)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

GOOD = ('{"txn_id":"g1","kind":"purchase","status":"approved","merchant_id":"M1","terminal_id":"T1",'
        '"stan":"000001","rrn":"r1","card_token":"tokA","amount":1000,"currency":"EUR",'
        '"event_time":"2026-11-22T10:00:00.000Z"}')


def variant(**changes):
    """GOOD with fields replaced (value None = field removed); raw JSON text values."""
    obj = json.loads(GOOD)
    text_fields = {}
    for k, v in changes.items():
        if v is None:
            obj.pop(k, None)
        else:
            obj[k] = "@@%s@@" % k
            text_fields[k] = v
    s = json.dumps(obj, separators=(",", ":"))
    for k, v in text_fields.items():
        s = s.replace('"@@%s@@"' % k, v)
    return s.encode("utf-8")


class Validation(unittest.TestCase):
    ACCEPT = [
        GOOD.encode(),
        variant(event_time="1795341600000"),
        variant(event_time='"2026-11-22T10:00:00Z"'),
        variant(event_time='"2026-11-22T10:00:00.123456789+05:30"'),
        variant(event_time='"2024-02-29T23:59:59.999-00:00"'),
        variant(pan_masked='"622848******1234"'), variant(pan_masked='"****"'), variant(pan_masked='"1234xxXX5678"'),
        variant(pan_masked="null"), variant(expected_amount="0"), variant(expected_amount="null"),
        variant(order_id='""'), variant(entry_mode='"ecom"'), variant(retransmission="false"),
        variant(original_rrn="12"),                         # ignored on a purchase
        variant(extra='{"a":[1,2.5e3,null,true],"b":"\\u0001","c":1e400}'),  # unknown fields ignored
        variant(txn_id='"' + "x" * 64 + '"'), variant(txn_id='"\\u00e9' + "x" * 62 + '"'),
        variant(card_token='"4111111111111112"'),            # 16 digits, Luhn fails: a token
        variant(card_token='"411111111111"'),                # 12 digits
        variant(amount="9223372036854775807"),
        b"  " + GOOD.encode() + b" \r",
        GOOD.encode().replace(b'"tokA"', b'"tok\xc3\xa9"'),    # UTF-8 in a token
        GOOD.encode().replace(b'"txn_id"', b'"txn\\u005fid"'), # escaped key
    ]
    REJECT = [
        b"{", b"[]", b'"x"', b"null", b"nul\x00l", GOOD.encode() + b"x", GOOD.encode() + b"{}",
        b"\xef\xbb\xbf" + GOOD.encode(),
        GOOD.encode().replace(b'"tokA"', b'"tok\xff"'),          # invalid UTF-8
        GOOD.encode().replace(b'"tokA"', b'"tok\x00"'),          # raw NUL in a string
        GOOD.encode().replace(b'"tokA"', b'"tok\x7f"'),          # DEL
        GOOD.encode().replace(b'"tokA"', b'"tok\xed\xa0\x80"'),  # UTF-8 encoded surrogate
        variant(card_token='"tok\\u0000"'), variant(card_token='"tok\\ud800"'),
        variant(extra='"\\udc00"'),                              # lone surrogate, unknown field
        GOOD.encode()[:-1] + b',"amount":1}',                   # duplicate field
        GOOD.encode()[:-1] + b',"zz":1,"zz":2}',                # duplicate unknown field
        b'{"txn_id":"a",' + b'"pad":"' + b"x" * 65536 + b'"}',     # > 64 KiB
        variant(txn_id=None), variant(txn_id="null"), variant(txn_id='""'), variant(txn_id="1"),
        variant(txn_id='"' + "x" * 65 + '"'), variant(txn_id='"\\u00e9' + "x" * 63 + '"'),
        variant(kind='"Purchase"'), variant(kind="null"), variant(status='"ok"'),
        variant(entry_mode='"magstripe"'), variant(entry_mode="1"),
        variant(amount="0"), variant(amount="-5"), variant(amount="1000.0"), variant(amount="1e3"),
        variant(amount='"1000"'), variant(amount="true"), variant(amount="9223372036854775808"),
        variant(amount="NaN"), variant(amount="Infinity"), variant(amount="-Infinity"),
        variant(amount="1" * 40),
        variant(expected_amount="-1"), variant(expected_amount="10.5"), variant(expected_amount="false"),
        variant(currency='"eur"'), variant(currency='"EURO"'), variant(currency='"E1R"'), variant(currency="978"),
        variant(event_time='"2026-11-22 10:00:00Z"'), variant(event_time='"2026-11-22T10:00:00"'),
        variant(event_time='"2026-02-29T10:00:00Z"'), variant(event_time='"2026-11-22T24:00:00Z"'),
        variant(event_time='"2026-11-22T10:00:60Z"'), variant(event_time='"2026-11-22T10:00:00.Z"'),
        variant(event_time='"2026-11-22t10:00:00z"'), variant(event_time='"1969-12-31T23:59:59.999Z"'),
        variant(event_time="-1"), variant(event_time="1.5e12"), variant(event_time="true"),
        variant(event_time='"2026-11-22T10:00:00.' + "1" * 50 + 'Z"'),   # > 64 bytes
        variant(pan_masked='"6228481234561234"'), variant(pan_masked='"1234567*1234"'),
        variant(pan_masked="12"),
        variant(card_token='"4111111111111111"'),                # a clear PAN
        variant(kind='"refund"'), variant(kind='"void"', original_rrn='""'),
        variant(kind='"reversal"', original_rrn="null"),
        variant(retransmission="1"), variant(retransmission='"true"'),
        variant(order_id="5"), variant(order_id='"' + "o" * 65 + '"'),
    ]

    def test_accept(self):
        for line in self.ACCEPT:
            try:
                oracle.validate(line)
            except oracle.Reject as r:
                self.fail("rejected (%s %s): %r" % (r.reason, r.detail, line[:160]))

    def test_reject(self):
        for line in self.REJECT:
            with self.assertRaises(oracle.Reject, msg=repr(line[:160])):
                oracle.validate(line)

    def test_line_length_boundary(self):
        pad = 65536 - len(GOOD) - len(',"pad":""')
        exact = (GOOD[:-1] + ',"pad":"' + "x" * pad + '"}').encode()
        self.assertEqual(len(exact), 65536)
        oracle.validate(exact)
        with self.assertRaises(oracle.Reject):
            oracle.validate(exact[:-2] + b'x"}')

    def test_empty_lines_and_counts(self):
        cfg = oracle.parse_rules(DEFAULT_RULES)
        data = b"\n".join([GOOD.encode(), b"", b"   ", b"\t\r", b"{bad", b"x" * 70000]) + b"\n"
        stats = oracle.run(cfg, data).stats()
        self.assertEqual((stats["lines"], stats["rejected"]), (3, 2))
        self.assertEqual(stats["rejected_by_reason"], {"line_too_long": 1, "malformed": 1})

    def test_event_time_truncated_to_ms(self):
        self.assertEqual(oracle.validate(variant(event_time='"2026-11-22T12:00:00.9999+02:00"')).t,
                         1795341600999)
        self.assertEqual(oracle.validate(variant(event_time='"2026-11-22T10:00:00.5Z"')).t, 1795341600500)


# ---------------------------------------------------------------------------
# Identifiers, output format, command line
# ---------------------------------------------------------------------------

class Identifiers(unittest.TestCase):
    def test_ids(self):
        # XXH3-128 of "abc", canonical form (high 64 bits first)
        self.assertEqual(oracle.xxh3_hex("abc"), "06b05ab6733a618578af5f94892f3950")
        h = xxhash.xxh3_128_intdigest(b"alert|r|f|t")
        self.assertEqual(oracle.alert_id("r", "f", "t"), "al-%016x%016x" % (h >> 64, h & (2 ** 64 - 1)))
        h = xxhash.xxh3_128_intdigest("refund|r|t\u00e9".encode("utf-8"))
        self.assertEqual(oracle.refund_id("r", "t\u00e9"), "rf-%032x" % h)

    def test_output_fields(self):
        outputs, _ = run(TWO_DUPLICATES.strip().splitlines()[0] + "\n" + TWO_DUPLICATES.strip().splitlines()[1])
        alert, refund = outputs
        self.assertEqual(alert, {
            "type": "alert", "alert_id": oracle.alert_id("retry-duplicate", "retry_duplicate", "p2"),
            "rule_id": "retry-duplicate", "rule_version": "2026-11-23.1",
            "rule_hash": xxhash.xxh3_64_hexdigest(DEFAULT_RULES.encode()), "detector": "retry_duplicate",
            "finding": "retry_duplicate", "severity": "high", "mode": "enforce", "merchant_id": "M1",
            "terminal_id": "T1", "txn_ids": ["p2", "p1"], "amount": 1000, "currency": "EUR",
            "pan_masked": "622848******1234", "reason": alert["reason"],
            "event_time": "2026-11-22T10:00:10.000Z"})
        self.assertEqual(refund, {
            "type": "refund", "refund_id": oracle.refund_id("retry-duplicate", "p2"),
            "alert_id": alert["alert_id"], "rule_id": "retry-duplicate", "txn_id": "p2", "rrn": "rp2",
            "merchant_id": "M1", "terminal_id": "T1", "card_token": "tokA", "amount": 1000,
            "currency": "EUR", "reason": "duplicate", "decided_at": "2026-11-22T10:02:10.000Z"})

    def test_command_line_and_compare(self):
        with tempfile.TemporaryDirectory() as d:
            rules, inp = os.path.join(d, "rules.yaml"), os.path.join(d, "in.jsonl")
            out, stats = os.path.join(d, "out.jsonl"), os.path.join(d, "stats.json")
            with open(rules, "w") as f:
                f.write(DEFAULT_RULES)
            with open(inp, "wb") as f:
                other = GOOD.replace('"tokA"', '"tokZ"').encode()
                f.write(TWO_DUPLICATES.strip().encode() + b"\n\n" + other + b"\n" + b"\xff\xfe\n")
            with open(out, "wb") as f:
                subprocess.run([sys.executable, os.path.join(HERE, "oracle.py"), "--rules", rules,
                                "--input", inp, "--stats", stats, "--cap-merchant", "1500"],
                               stdout=f, check=True)
            with open(stats) as f:
                st = json.load(f)
            self.assertEqual((st["lines"], st["rejected"], st["duplicates"], st["late"], st["refunds"]),
                             (10, 1, 0, 1, 3))   # tokZ at 10:00:00 after 10:58: late
            compare = os.path.join(HERE, "compare.py")
            same = subprocess.run([sys.executable, compare, out, out, "--stats-expected", stats,
                                   "--stats-actual", stats], stdout=subprocess.PIPE)
            self.assertEqual(same.returncode, 0, same.stdout.decode())
            # reorder, change detected_at/reason only: still equal
            with open(out) as f:
                objs = [json.loads(l) for l in f]
            for o in objs:
                o["detected_at"] = "2000-01-01T00:00:00.000Z"
                o["reason"] = "whatever"
            alt = os.path.join(d, "alt.jsonl")
            with open(alt, "w") as f:
                f.write("\n".join(json.dumps(o) for o in reversed(objs)) + "\n")
            self.assertEqual(subprocess.run([sys.executable, compare, out, alt],
                                            stdout=subprocess.PIPE).returncode, 0)
            # one refund amount changed: different, and the field is named
            objs[0 if objs[0]["type"] == "refund" else -1]["amount"] += 1
            with open(alt, "w") as f:
                f.write("\n".join(json.dumps(o) for o in objs) + "\n")
            diff = subprocess.run([sys.executable, compare, out, alt], stdout=subprocess.PIPE)
            self.assertEqual(diff.returncode, 1)
            self.assertIn(b"differs in: amount", diff.stdout)


if __name__ == "__main__":
    unittest.main()
