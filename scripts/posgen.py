#!/usr/bin/python3
"""posgen.py - posguard's traffic generator: realistic, labelled, deterministic
streams of POS authorisation records, one JSON object per line, with the field
names of DOMAIN.md. Used by the tests, the oracle checks, the demo and the
benchmarks. Standard library only; run it with /usr/bin/python3.

USAGE
  posgen.py [--count N] [--seed S] [--out FILE] [--labels FILE] [options]

  posgen.py --count 100000 --out txn.jsonl --labels labels.jsonl
  posgen.py --count 120000 --seed 2 --base fdh:../shared/data/fdh-2018-04.csv.gz
  posgen.py --count 50000 --p-disorder 0 --p-late 0 --no-malformed > in.jsonl

  The same seed and the same arguments always give a byte-identical stream
  and labels file (no wall clock, no hash randomisation, one seeded PRNG).
  A one-line summary goes to stderr at the end (records per kind/status,
  redeliveries, disordered, late, malformed per kind, scenarios per name).

WHAT IS GENERATED
  Base traffic (--count N records, exactly, before redeliveries, malformed
  lines and injected scenarios):
  * purchases: each card visits merchants (Zipf-like popularity), pays at one
    of the merchant's terminals; about --p-decline are declined and --p-error
    end in error; amounts are log-normal in minor units (median about 22.00,
    some rounded to whole units or ending in .99), mostly EUR, some merchants
    in GBP/CHF/USD/SEK/JPY (JPY has no decimals) and ~1.5% of records in a
    foreign currency (DCC).
  * follow-ups of approved purchases, scheduled at their own event time and
    counted in N: refunds (--p-refund of the base records; same card, full or
    partial, 2 min to 60 min later, never more than the purchase, at most one
    per purchase), voids (--p-void; 2 s to 5 min later) and reversals
    (--p-reversal; 0.5 s to 60 s later); ~1% of follow-ups are declined/error.
  * integrated terminals (--p-integrated of the terminals; the register is
    connected) send expected_amount (= amount in base traffic) and order_id.
  * base traffic is kept free of accidental duplicates: when an approved
    purchase would share (merchant, card, amount, currency) with another
    charge within 130 s, its amount is nudged by one minor unit (counted as
    "nudged" in the summary), so every finding in the stream is an injected,
    labelled one (unless --cards/--merchants are made tiny, e.g. declined
    base purchases could then reach the card-testing threshold).

  --base fdh:PATH uses the public FDH card-transaction month (CSV or .csv.gz
  with TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT) as the
  purchases instead of synthetic ones: TERMINAL_ID -> terminal "T%07d",
  merchant = TERMINAL_ID // --terminals-per-merchant (default 10 there),
  CUSTOMER_ID -> one card (token and pan_masked derived from seed and id),
  TX_AMOUNT -> minor units (rows with amount 0 are skipped), TX_DATETIME ->
  event time: the first row maps to --start and time is compressed by
  --time-scale (default 60: one FDH hour becomes one minute, about 6.7
  records/s, dense enough for the 2-minute windows), plus a sub-quantum jitter.
  Declines, errors, follow-ups, scenarios, disorder etc. are added as in
  synthetic mode; --count still counts base records (rows used <= N);
  --count 0 uses the whole file. --rate, --merchants, --cards are ignored.

  Transport effects (per emitted record):
  * --p-disorder: emitted up to 4 s later than its event time implies (out
    of order but within the default allowed_lateness of 5 s, never late).
  * --p-late: emitted 10 s to 60 s later (beyond 5 s: counted late).
  * --p-redeliver: an exact copy of the line (same txn_id) is emitted again
    50 ms to 30 s after the original.
  * --p-malformed (per base record): a malformed line is inserted. Kinds:
    not_json, truncated, binary (random bytes with NUL and invalid UTF-8),
    nul_in_string, invalid_utf8, not_object, missing_field, null_field,
    wrong_type, empty_string, bad_enum, bad_amount (0, negative, fraction,
    exponent, string, bool, beyond int64, negative expected_amount),
    bad_currency, bad_time, oversize (a string > 64 bytes, also 33 two-byte
    characters), duplicate_field, missing_original_rrn (refund/void/reversal
    without, null or empty original_rrn), clear_pan (16-digit Luhn-valid PAN
    in pan_masked or card_token, or a mask showing too many digits),
    control_char, lone_surrogate, trailing_garbage, line_too_long (> 64 KiB).
    Every malformed line has a fresh txn_id where it has one; malformed lines
    never contain a newline and are never blank.
  Scenario records are never made late (lateness changes results by design);
  they are disordered only when no other record of the same scenario has the
  same event time (ties are decided by input order).

INJECTED SCENARIOS (--p-anomaly scenarios per base record; --no-anomalies)
  The first scenarios cycle once through the whole catalogue (the ones that
  produce each finding come first), then they are drawn by weight. Each
  writes one label (see LABELS). expect = findings the scenario should raise
  under rules/default.yaml ("card-testing" is the aggregate rule's id).
  Positive:
    retry_duplicate              same terminal/STAN/card/amount, new txn/rrn,
                                 0.2 s-15 min later (mostly seconds), some
                                 with retransmission=true -> refund
    retry_window_edge            exactly 900000 ms later -> refund
    retry_same_time              equal event time, original first -> refund
    retry_chain                  3-5 retransmissions of one request
    retry_then_swipe             a retransmission, then a new swipe at 20 s
    repeated_swipe_refund        new STAN (same or other terminal of the
                                 merchant), 1-60 s, no order ids -> refund
    repeated_swipe_edge_60000    exactly 60000 ms, no order ids -> refund
    repeated_swipe_edge_60001    exactly 60001 ms -> alert, no refund
    repeated_swipe_no_refund     60.001-120 s, no order ids -> alert only
    repeated_swipe_edge_120000   exactly 120000 ms -> alert only
    repeated_swipe_same_order    same order_id, 1-120 s -> refund
    repeated_swipe_same_order_escaped  same order_id (non-ASCII, quotes),
                                 JSON-escaped differently in the two lines
    repeated_swipe_one_order     only one carries an order_id -> alert only
    repeated_swipe_empty_order   order_id "" / null on both = absent -> refund
    repeated_swipe_chain         3 (sometimes 4) swipes within 60 s -> 2-3
                                 alerts and refunds
    overcharge_x10 / _x100       amount = expected*10 / *100 (critical)
    overcharge_small             amount = expected + 1..999 (high)
    overcharge_expected_zero     expected_amount 0 (refund = whole amount)
    undercharge_div10            amount = expected/10 (critical), alert only
    undercharge_small            amount = expected - 1..999, alert only
    refund_exceeds_original      two partial refunds above the charge, or
                                 one refund above it
    refund_card_mismatch         refund of a charge to another card
    refund_mismatch_and_exceeds  both findings on one refund
    refund_without_original      original_rrn never issued
    refund_of_declined           original_rrn of a declined purchase
    refund_before_original       the refund's event time precedes the charge
    card_testing_burst           5-8 declined purchases on a fresh card at
                                 one e-commerce terminal within 10 min
    card_testing_edge_600000     5 declines, 1st to 5th exactly 600000 ms
    card_testing_rearm           two bursts > 10 min apart: two alerts
    duplicate_manual_partial_refund   merchant refunds part of the
                                 duplicate before the decision: refund shrinks
    duplicate_manual_refund_after_decision  merchant refunds the duplicate
                                 in full after the engine did: also
                                 refund_exceeds_original
    retry_original_voided_after_decision  void of the original at D+1 ms
                                 (D = duplicate + 120 s): refund still made
    overcharged_duplicate        retry (or same-order swipe) of an
                                 overcharged charge: a partial refund for the
                                 first, ONE full refund for the duplicate
  Negative / tricky (expect [] or no refund):
    retry_outside_window         900001 ms later -> nothing
    repeated_swipe_outside_window  120001 ms later -> nothing
    same_amount_different_orders two genuine orders, same card and amount,
                                 different order_ids -> nothing
    declined_then_approved       first attempt declined, second approved
                                 (new or same STAN) -> nothing
    retry_after_reversal / retry_after_void  original cancelled before the
                                 retransmission -> nothing
    retry_after_reversal_same_time  reversal at the retransmission's event
                                 time, after it in the input -> nothing
    swipe_after_void             first charge voided, then a new swipe
    retry_original_voided_before_decision  alert, original voided before
                                 D: no refund
    retry_original_voided_at_decision      void exactly at D: no refund
    swipe_original_voided_before_decision  the same for a repeated swipe
    duplicate_voided_itself      the duplicate is voided/reversed: no refund
    duplicate_manual_full_refund merchant refunds the duplicate in full
                                 before D: alert, no refund command
    duplicate_manual_refund_at_decision  ... exactly at D: no refund command
    overcharge_voided_and_recharged  overcharge voided, correct charge
                                 follows: alert, no refund
    overcharge_refunded_by_merchant  merchant refunds the difference before
                                 D: alert, no refund command
    refund_partial_sum_exact     two refunds summing exactly to the charge
    refund_same_time_as_original refund and charge at the same event time,
                                 refund first in the input: charge is known
    card_testing_spread          5 declines, 1st to 5th 600001 ms -> nothing
    card_testing_four            4 declines -> nothing
    card_testing_errors          5 purchases with status error -> nothing
    same_amount_other_currency   same card/merchant/amount, other currency
    same_amount_other_merchant   same card/amount at another merchant
    swipe_other_terminal_same_stan  other terminal of the merchant whose
                                 STAN string happens to be equal: neither a
                                 retry (other terminal) nor a swipe (same
                                 STAN, SEMANTICS 3) -> nothing
    redelivery_changed_fields    same txn_id again with amount*10: a
                                 transport duplicate, dropped -> nothing
  Duplicate chains of one charge are at most 5 records long.

LABELS (--labels FILE): JSON lines, one per scenario, in creation order:
  {"scenario": NAME, "txn_ids": [every record of the scenario, in event-time
   order], "expect": [findings, one per expected alert, in order of the
   offending record], "refund": true|false|null, "note": TEXT,
   "start": RFC 3339 time of the first record}
  refund: whether the scenario should produce at least one refund command
  under the default rules without guard rails tripping (null: depends). The
  labels are intent; the exact truth is the oracle's.

OUTPUT FORMAT (one record per line, '\\n'-terminated, written as bytes)
  Fields in this order (a few lines shuffle the order, add spaces after ':'
  and ',', or carry unknown extra fields such as "acquirer_id" or a nested
  "host" object; the engine must ignore those):
  txn_id          "T" + 16 lower-case hex, a seeded bijection of a counter:
                  unique per record; redeliveries repeat it
  kind            purchase | refund | reversal | void
  status          approved | declined | error
  merchant_id     "M%06d"
  terminal_id     "T%07d" (globally unique terminal number)
  stan            6 digits, a counter per terminal (starts at a seeded
                  value, 999999 wraps to 000001); a retransmission repeats it
  rrn             12 digits, unique for every record (approved or not),
                  a seeded bijection of a counter
  card_token      "tok_" + 24 lower-case hex, stable per card
  pan_masked      first 6 / last 4 with '*' (5% of cards 'X'), e.g.
                  "622848******1234" (15-digit cards: 5 masked); stable per
                  card; absent on ~3% of records
  amount          JSON integer > 0, minor units
  currency        three upper-case letters
  expected_amount JSON integer (integrated terminals, purchases only)
  order_id        "ORD-%05d-%07d" (merchant, register counter); rarely
                  exactly 64 bytes, some with non-ASCII characters, some
                  written with \\u escapes; "" or null in some scenarios
  original_rrn    refund/reversal/void only: the rrn referred to
  event_time      mostly "YYYY-MM-DDTHH:MM:SS.mmmZ"; --p-int-time of records
                  use integer ms since the epoch; ~1% use a UTC offset
                  ("...+05:30") or a microsecond fraction (truncated to ms)
  entry_mode      chip | swipe | contactless | keyed | ecom; absent on ~3%
  retransmission  true on some retransmitted scenario charges; false on ~1%

OPTIONS
  see below; probabilities are fractions in [0, 1].
"""

import argparse
import gzip
import hashlib
import heapq
import json
import math
import random
import re
import sys
import time

MASK64 = (1 << 64) - 1
RRN_SPACE = 10 ** 12
STAN_MAX = 999999
GUARD_MS = 130000             # nudge accidental same-key charges within this
WINDOW_PRUNE_MS = 140000
MAX_STRING = 64
LATE_MIN_MS, LATE_MAX_MS = 10000, 60000
DISORDER_MAX_MS = 4000

CURRENCIES = ("EUR", "GBP", "CHF", "USD", "SEK", "JPY")
CUR_WEIGHTS = (0.88, 0.04, 0.03, 0.02, 0.02, 0.01)
CUR_FACTOR = {"EUR": 1.0, "GBP": 0.86, "CHF": 0.95, "USD": 1.08, "SEK": 11.4, "JPY": 1.6}
P_FOREIGN = 0.015
P_NO_PAN = 0.03
P_RETRANS_FALSE = 0.01
P_TIME_VARIANT = 0.01
P_EXTRA_FIELD = 0.01
P_SHUFFLE = 0.005
P_SPACED = 0.005
P_LONG_ORDER = 0.002

# (name, BIN, length)
BINS = (("622848", 16), ("453201", 16), ("455673", 16), ("520082", 16),
        ("535310", 16), ("356600", 16), ("374245", 15), ("601100", 16),
        ("400115", 16), ("516732", 16), ("222300", 16), ("621483", 16))

ENTRY_TABLE = (["contactless"] * 55 + ["chip"] * 28 + ["swipe"] * 4 + ["keyed"] * 2
               + ["ecom"] * 8 + [None] * 3)

TAG_VALID, TAG_DISORDER, TAG_LATE, TAG_DUP, TAG_BAD = 0, 1, 2, 3, 4


# ---------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------

def days_from_civil(y, m, d):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def minute_prefix(minute):
    """'YYYY-MM-DDTHH:MM:' of a minute index since the epoch."""
    days, mod = divmod(minute, 1440)
    y, mo, d = civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:" % (y, mo, d, mod // 60, mod % 60)


def format_time(t):
    m, ms = divmod(t, 60000)
    return "%s%02d.%03dZ" % (minute_prefix(m), ms // 1000, ms % 1000)


RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})\Z")


def parse_time(s):
    m = RFC3339_RE.match(s)
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % s)
    y, mo, d, hh, mi, ss = (int(m.group(i)) for i in range(1, 7))
    ms = int(((m.group(7) or "") + "000")[:3])
    t = ((days_from_civil(y, mo, d) * 24 + hh) * 60 + mi) * 60000 + ss * 1000 + ms
    tz = m.group(8)
    if tz not in ("Z", "z"):
        off = (int(tz[1:3]) * 60 + int(tz[4:6])) * 60000
        t -= off if tz[0] == "+" else -off
    return t


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def mix64(x):
    """splitmix64 finaliser: a bijection on 64-bit integers."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def luhn_complete(digits):
    """digits (str, without check digit) + the Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return digits + str((10 - total % 10) % 10)


class Term:
    __slots__ = ("idx", "midx", "mid", "tid", "stan", "integ", "cur")


class Card:
    __slots__ = ("idx", "token", "pan", "bin")


class Rec:
    """A scheduled record (scenario or follow-up); formatted when released."""
    __slots__ = ("t", "txn", "kind", "status", "term", "stan", "rrn", "card",
                 "amount", "cur", "exp", "order", "orig", "entry", "retrans",
                 "perturb", "dup_of", "pan", "base")

    def __init__(self):
        self.stan = None
        self.exp = None
        self.order = None
        self.orig = None
        self.entry = None
        self.retrans = None
        self.perturb = True
        self.dup_of = None
        self.pan = True
        self.base = False


class Infeasible(Exception):
    pass


class Conflict(Exception):
    pass


# ---------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------

class Gen:
    def __init__(self, a, out, labels):
        self.a = a
        self.out = out
        self.labels = labels
        self.rng = random.Random("posgen|%d" % a.seed)
        rnd = self.rng.random
        self.rnd = rnd
        seedkey = int.from_bytes(hashlib.blake2b(b"posgen|%d" % a.seed, digest_size=16).digest(), "big")
        self.seedkey = seedkey
        self.txn_key = seedkey & MASK64
        self.txn_n = 0
        mult = (seedkey >> 64) % RRN_SPACE | 1
        if mult % 5 == 0:
            mult += 2
        self.rrn_mult = mult
        self.rrn_add = (seedkey >> 20) % RRN_SPACE
        self.rrn_n = 0
        self.rrn_unused_n = 0
        self.terms = {}
        self.cards = {}
        self.mcur = {}
        self.morder = {}
        self.fresh_card_n = 0
        self.guard = {}
        self.pending = []
        self.pseq = 0
        self.oheap = []
        self.oseq = 0
        self.wbuf = []
        self.wlen = 0
        self.max_t = None
        self.cache_min = None
        self.cache_pre = ""
        # counters
        self.c_kind = {}
        self.c_bad = {}
        self.c_scen = {}
        self.n_lines = 0
        self.n_redeliver = 0
        self.n_disorder = 0
        self.n_late = 0
        self.n_late_planned = 0
        self.n_disorder_late = 0
        self.n_nudged = 0
        self.n_base = 0
        self.n_scen_records = 0
        self.n_mutated = 0
        # probabilities
        self.fdh = a.base != "synthetic"
        purch = 1.0 - a.p_refund - a.p_void - a.p_reversal
        appr = 1.0 - a.p_decline - a.p_error
        if purch <= 0 or appr <= 0:
            sys.exit("posgen: --p-refund + --p-void + --p-reversal and --p-decline + --p-error must be < 1")
        self.q_void = a.p_void / (purch * appr)
        self.q_rev = self.q_void + a.p_reversal / (purch * appr)
        self.q_ref = self.q_rev + a.p_refund / (purch * appr)
        if self.q_ref > 1:
            sys.exit("posgen: follow-up fractions too large for the share of approved purchases")
        self.p_anom_slot = a.p_anomaly / purch
        self.p_malformed = a.p_malformed
        self.seen_terms = []
        self.seen_cards = []
        self.seen_term_set = set()
        self.seen_card_set = set()
        self.scen_n = 0
        self.catalogue = [s for s in SCENARIOS if a.only is None or s[0] in a.only]
        if not self.catalogue:
            sys.exit("posgen: --only selects no scenario")
        self.cum = []
        total = 0.0
        for s in self.catalogue:
            total += s[1]
            self.cum.append(total)
        self.cum_total = total
        self.t_start = a.start_ms

    # -- identifiers ---------------------------------------------------------

    def new_txn(self):
        self.txn_n += 1
        return "T%016x" % mix64(self.txn_key ^ self.txn_n)

    def new_rrn(self):
        self.rrn_n += 1
        return "%012d" % ((self.rrn_n * self.rrn_mult + self.rrn_add) % RRN_SPACE)

    def unused_rrn(self):
        """An rrn that is never issued to any record."""
        self.rrn_unused_n += 1
        i = RRN_SPACE - self.rrn_unused_n
        return "%012d" % ((i * self.rrn_mult + self.rrn_add) % RRN_SPACE)

    def h(self, tag, idx):
        d = hashlib.blake2b(b"%d|%s|%d" % (self.a.seed, tag, idx), digest_size=20).digest()
        return int.from_bytes(d, "big")

    def merchant_cur(self, midx):
        c = self.mcur.get(midx)
        if c is None:
            u = (self.h(b"mcur", midx) % 1000000) / 1e6
            acc = 0.0
            c = "EUR"
            for cur, w in zip(CURRENCIES, CUR_WEIGHTS):
                acc += w
                if u < acc:
                    c = cur
                    break
            self.mcur[midx] = c
        return c

    def term(self, idx):
        t = self.terms.get(idx)
        if t is None:
            hv = self.h(b"term", idx)
            t = Term()
            t.idx = idx
            t.midx = idx // self.a.terminals_per_merchant
            t.mid = "M%06d" % t.midx
            t.tid = "T%07d" % idx
            t.stan = hv % STAN_MAX          # next stan = this + 1
            t.integ = ((hv >> 32) % 1000000) / 1e6 < self.a.p_integrated
            t.cur = self.merchant_cur(t.midx)
            self.terms[idx] = t
            if idx not in self.seen_term_set and len(self.seen_terms) < 200000:
                self.seen_term_set.add(idx)
                self.seen_terms.append(idx)
        return t

    def card(self, idx):
        c = self.cards.get(idx)
        if c is None:
            hv = self.h(b"card", idx)
            c = Card()
            c.idx = idx
            c.token = "tok_%024x" % (hv & ((1 << 96) - 1))
            b, n = BINS[(hv >> 96) % len(BINS)]
            last4 = "%04d" % ((hv >> 112) % 10000)
            mask = "X" if (hv >> 130) % 20 == 0 else "*"
            c.pan = b + mask * (n - 10) + last4
            c.bin = b
            self.cards[idx] = c
            if idx < 10 ** 9 and idx not in self.seen_card_set and len(self.seen_cards) < 500000:
                self.seen_card_set.add(idx)
                self.seen_cards.append(idx)
        return c

    def fresh_card(self):
        self.fresh_card_n += 1
        return self.card(10 ** 9 + self.fresh_card_n)

    def next_stan(self, term):
        s = term.stan % STAN_MAX + 1
        term.stan = s
        return "%06d" % s

    def new_order(self, midx):
        n = self.morder.get(midx, 0) + 1
        self.morder[midx] = n
        return "ORD-%05d-%07d" % (midx % 100000, n)

    def order_json(self, midx):
        """JSON text of a new order id, rarely at the 64-byte boundary."""
        s = self.new_order(midx)
        if self.rnd() < P_LONG_ORDER:
            r = self.rnd()
            if r < 0.5:
                return '"' + (s + "-" + "x" * MAX_STRING)[:MAX_STRING] + '"'
            # exactly 64 bytes of UTF-8 with two-byte characters
            u = "Café-" + s + "-"
            while len(u.encode()) < MAX_STRING - 1:
                u += "é"
            if len(u.encode()) < MAX_STRING:
                u += "x"
            return json.dumps(u, ensure_ascii=r < 0.75)
        return '"' + s + '"'

    def draw_amount(self, cur):
        a = math.exp(self.rng.gauss(7.7, 0.95))
        if a < 50:
            a = 50 + self.rnd() * 100
        elif a > 2000000:
            a = 2000000
        a = a * CUR_FACTOR[cur]
        r = self.rnd()
        if cur == "JPY":
            return max(10, int(a / 10) * 10)
        if r < 0.25:
            return max(100, int(a / 100) * 100)
        if r < 0.4:
            return max(99, int(a / 100) * 100 + 99)
        return max(1, int(a))

    # -- time and line formatting -----------------------------------------------

    def time_json(self, t):
        r = self.rnd()
        if r < self.a.p_int_time:
            return str(t)
        m, ms = divmod(t, 60000)
        if m != self.cache_min:
            self.cache_min = m
            self.cache_pre = minute_prefix(m)
        if r < self.a.p_int_time + P_TIME_VARIANT:
            if self.rnd() < 0.5:
                return '"%s%02d.%03d%03dZ"' % (self.cache_pre, ms // 1000, ms % 1000,
                                               self.rng.randrange(1000))
            off = self.rng.choice((60, 120, -300, 330, 540, -180))
            lt = t + off * 60000
            lm, lms = divmod(lt, 60000)
            return '"%s%02d.%03d%s%02d:%02d"' % (minute_prefix(lm), lms // 1000, lms % 1000,
                                                "+" if off >= 0 else "-", abs(off) // 60, abs(off) % 60)
        return '"%s%02d.%03dZ"' % (self.cache_pre, ms // 1000, ms % 1000)

    def line(self, txn, kind, status, term, stan, rrn, card, pan, amount, cur, exp,
             order, orig, t, entry, retrans):
        """One record as a str (JSON object, no newline)."""
        parts = ['{"txn_id":"%s","kind":"%s","status":"%s","merchant_id":"%s","terminal_id":"%s",'
                 '"stan":"%s","rrn":"%s","card_token":"%s"' % (txn, kind, status, term.mid, term.tid,
                                                                  stan, rrn, card.token)]
        if pan:
            parts.append(',"pan_masked":"%s"' % card.pan)
        parts.append(',"amount":%d,"currency":"%s"' % (amount, cur))
        if exp is not None:
            parts.append(',"expected_amount":%d' % exp)
        if order is not None:
            parts.append(',"order_id":' + order)
        if orig is not None:
            parts.append(',"original_rrn":"%s"' % orig)
        parts.append(',"event_time":' + self.time_json(t))
        if entry is not None:
            parts.append(',"entry_mode":"%s"' % entry)
        if retrans is not None:
            parts.append(',"retransmission":true' if retrans else ',"retransmission":false')
        r = self.rnd()
        if r < P_EXTRA_FIELD + P_SHUFFLE + P_SPACED:
            return self.vary(''.join(parts) + '}', r)
        parts.append('}')
        return ''.join(parts)

    def vary(self, s, r):
        """Layout variants of a valid line: extra unknown fields, another
        field order, spaces. Same record."""
        pairs = _split_top(s)      # keeps the exact text of each value
        if r < P_EXTRA_FIELD:
            extra = self.rng.choice((
                ('acquirer_id', '"ACQ%02d"' % self.rng.randrange(1, 9)),
                ('host', '{"node":"h%d","hops":[1,2],"ok":true,"x":null}' % self.rng.randrange(9)),
                ('batch_no', str(self.rng.randrange(1, 999))),
                ('note', 'null'),
                ('tags', '[]'),
                ('ratio', '0.25'),
            ))
            pairs.insert(self.rng.randrange(1, len(pairs) + 1), extra)
            return '{' + ','.join('"%s":%s' % kv for kv in pairs) + '}'
        if r < P_EXTRA_FIELD + P_SHUFFLE:
            self.rng.shuffle(pairs)
            return '{' + ','.join('"%s":%s' % kv for kv in pairs) + '}'
        return '{ ' + ', '.join('"%s": %s' % kv for kv in pairs) + ' }'

    # -- output -------------------------------------------------------------------

    def flush(self, upto):
        oh = self.oheap
        pop = heapq.heappop
        wbuf = self.wbuf
        while oh and (upto is None or oh[0][0] <= upto):
            _, _, data, tag, t = pop(oh)
            if tag <= TAG_LATE:
                mt = self.max_t
                if mt is not None and t < mt - 5000:
                    self.n_late += 1
                    if tag != TAG_LATE:
                        self.n_disorder_late += 1
                elif mt is None or t > mt:
                    self.max_t = t
            wbuf.append(data)
        if len(wbuf) >= 2048 or upto is None:
            self.out.write(b"".join(wbuf))
            self.n_lines += len(wbuf)
            wbuf.clear()

    def emit(self, t, text, kind, status, may_perturb, is_base):
        """Queue one valid record line for output at its emission key."""
        self.flush(t)
        data = text.encode("utf-8") + b"\n"
        key = (kind, status)
        self.c_kind[key] = self.c_kind.get(key, 0) + 1
        rnd = self.rnd
        emit_at = t
        tag = TAG_VALID
        if may_perturb:
            r = rnd()
            if is_base and r < self.a.p_late:
                emit_at = t + self.rng.randint(LATE_MIN_MS, LATE_MAX_MS)
                tag = TAG_LATE
                self.n_late_planned += 1
            elif r < self.a.p_late + self.a.p_disorder:
                emit_at = t + self.rng.randint(1, DISORDER_MAX_MS)
                tag = TAG_DISORDER
                self.n_disorder += 1
        self.oseq += 1
        heapq.heappush(self.oheap, (emit_at, self.oseq, data, tag, t))
        if rnd() < self.a.p_redeliver:
            self.oseq += 1
            self.n_redeliver += 1
            heapq.heappush(self.oheap, (emit_at + self.rng.randint(50, 30000), self.oseq, data, TAG_DUP, t))
        if is_base and rnd() < self.p_malformed:
            self.oseq += 1
            heapq.heappush(self.oheap, (t, self.oseq, self.malformed(t), TAG_BAD, t))

    def release(self, rec):
        """Format and emit a scheduled record."""
        term = rec.term
        st = rec.stan
        if st is None:
            stan = self.next_stan(term)
        elif isinstance(st, Rec):
            stan = st.stan if isinstance(st.stan, str) else None
            if stan is None:
                raise AssertionError("stan of a record not yet released")
        elif isinstance(st, tuple):             # ("ne", rec): new, != rec's
            stan = self.next_stan(term)
            if stan == st[1].stan:
                stan = self.next_stan(term)
        else:
            stan = st
        rec.stan = stan
        orig = rec.orig
        if isinstance(orig, Rec):
            orig = orig.rrn
        if rec.dup_of is not None:
            self.n_mutated += 1
            d = rec.dup_of
            text = self.line(d.txn, d.kind, d.status, d.term, d.stan, d.rrn, d.card,
                             rec.pan and d.pan, rec.amount, d.cur, d.exp, d.order, None,
                             rec.t, d.entry, d.retrans)
            self.flush(rec.t)
            self.oseq += 1
            heapq.heappush(self.oheap, (rec.t, self.oseq, text.encode("utf-8") + b"\n", TAG_DUP, rec.t))
            return
        pan = rec.pan and self.rnd() >= P_NO_PAN
        rec.pan = pan
        text = self.line(rec.txn, rec.kind, rec.status, term, stan, rec.rrn, rec.card, pan,
                         rec.amount, rec.cur, rec.exp, rec.order, orig, rec.t, rec.entry,
                         rec.retrans)
        if not rec.base:
            self.n_scen_records += 1
        self.emit(rec.t, text, rec.kind, rec.status, rec.perturb, rec.base)

    def schedule(self, rec):
        self.pseq += 1
        heapq.heappush(self.pending, (rec.t, self.pseq, rec))

    def release_until(self, t):
        p = self.pending
        while p and (t is None or p[0][0] <= t):
            self.release(heapq.heappop(p)[2])

    # -- guard against accidental duplicates -----------------------------------------

    def guard_hit(self, key, t):
        lst = self.guard.get(key)
        if lst:
            for x in lst:
                if -GUARD_MS <= x - t <= GUARD_MS:
                    return True
        return False

    def guard_prune(self, now):
        lim = now - WINDOW_PRUNE_MS
        self.guard = {k: v for k, v in self.guard.items() if max(v) >= lim}

    # -- base traffic -------------------------------------------------------------------

    def base_purchase(self, t, term, card, amount, cur):
        """Emit one base purchase at time t; schedule its follow-up."""
        a = self.a
        rnd = self.rnd
        self.release_until(t)
        r = rnd()
        status = "declined" if r < a.p_decline else ("error" if r < a.p_decline + a.p_error else "approved")
        if cur is None:
            cur = term.cur if rnd() >= P_FOREIGN else CURRENCIES[self.rng.randrange(len(CURRENCIES))]
            amount = self.draw_amount(cur)
        elif cur != "EUR":
            amount = max(1, int(amount * CUR_FACTOR[cur]))
        if status == "approved":
            key = (term.midx, card.idx, amount, cur)
            lst = self.guard.get(key)
            if lst is not None:
                while self.guard_hit(key, t):
                    amount += 1
                    self.n_nudged += 1
                    key = (term.midx, card.idx, amount, cur)
                lst = self.guard.get(key)
            if lst is None:
                self.guard[key] = [t]
            else:
                lst.append(t)
        stan = self.next_stan(term)
        rrn = self.new_rrn()
        txn = self.new_txn()
        if term.integ:
            exp = amount
            order = self.order_json(term.midx)
        else:
            exp = order = None
        entry = ENTRY_TABLE[int(rnd() * 100)]
        pan = rnd() >= P_NO_PAN
        retrans = False if rnd() < P_RETRANS_FALSE else None
        text = self.line(txn, "purchase", status, term, stan, rrn, card, pan, amount, cur,
                         exp, order, None, t, entry, retrans)
        self.n_base += 1
        self.emit(t, text, "purchase", status, True, True)
        if status == "approved" and self.n_base < self.limit:
            r = rnd()
            if r < self.q_ref:
                if r < self.q_void:
                    self.follow("void", t, t + self.rng.randint(2000, 300000), term, card, amount, cur, rrn)
                elif r < self.q_rev:
                    self.follow("reversal", t, t + self.rng.randint(500, 60000), term, card, amount, cur, rrn)
                else:
                    remain = (self.limit - self.n_base) / max(self.obs_rate(t), 1e-6)
                    hi = int(min(3600000, max(120000, remain)))
                    amt = amount if rnd() < 0.6 else max(1, int(amount * (0.1 + 0.8 * rnd())))
                    rt = term
                    if rnd() < 0.1 and self.a.terminals_per_merchant > 1:
                        base = term.midx * self.a.terminals_per_merchant
                        rt = self.term(base + self.rng.randrange(self.a.terminals_per_merchant))
                    self.follow("refund", t, t + self.rng.randint(120000, hi), rt, card, amt, cur, rrn)
        if rnd() < self.p_anom_slot:
            self.scenario(t, term, card)
        if self.n_base % 50000 == 0:
            self.guard_prune(t)

    def obs_rate(self, t):
        if self.n_base < 200 or t <= self.t_start:
            return self.a.rate / 1000.0
        return self.n_base / (t - self.t_start)

    def follow(self, kind, t0, t, term, card, amount, cur, rrn):
        rec = Rec()
        rec.base = True
        rec.t = t
        rec.txn = self.new_txn()
        rec.kind = kind
        r = self.rnd()
        rec.status = "approved" if r < 0.99 else ("declined" if r < 0.995 else "error")
        rec.term = term
        rec.rrn = self.new_rrn()
        rec.card = card
        rec.amount = amount
        rec.cur = cur
        rec.orig = rrn
        rec.entry = None if kind != "refund" else ENTRY_TABLE[int(self.rnd() * 97)]
        self.n_base += 1
        self.schedule(rec)

    def run_synthetic(self):
        a = self.a
        rng = self.rng
        rnd = self.rnd
        expo = rng.expovariate
        lam = a.rate / 1000.0
        nm, tpm, nc = a.merchants, a.terminals_per_merchant, a.cards
        t = a.start_ms
        tf = float(t)
        term_of = self.term
        card_of = self.card
        while self.n_base < self.limit:
            tf += expo(lam)
            t = int(tf)
            m = int(nm * rnd() ** 1.6)
            term = term_of(m * tpm + int(tpm * rnd() ** 1.3))
            if rnd() < 0.2:                 # 5% of the cards make 20% of the traffic
                card = card_of(int(nc * 0.05 * rnd()))
            else:
                card = card_of(int(nc * rnd()))
            self.base_purchase(t, term, card, None, None)

    def run_fdh(self, path):
        a = self.a
        opener = gzip.open if path.endswith(".gz") else open
        scale = a.time_scale
        quantum = 1000.0 / scale
        date_cache = {}
        sec0 = None
        rnd = self.rnd
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            header = f.readline().strip().split(",")
            try:
                i_dt, i_cu, i_te, i_am = (header.index(c) for c in
                                          ("TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT"))
            except ValueError:
                sys.exit("posgen: %s: expected columns TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT" % path)
            last = None
            for row in f:
                if self.n_base >= self.limit:
                    break
                c = row.rstrip("\r\n").split(",")
                if len(c) <= max(i_dt, i_cu, i_te, i_am):
                    continue
                amt = int(round(float(c[i_am]) * 100))
                if amt <= 0:
                    self.n_fdh_skipped += 1
                    continue
                dt = c[i_dt]
                day = date_cache.get(dt[:10])
                if day is None:
                    day = days_from_civil(int(dt[0:4]), int(dt[5:7]), int(dt[8:10]))
                    date_cache[dt[:10]] = day
                sec = day * 86400 + int(dt[11:13]) * 3600 + int(dt[14:16]) * 60 + int(dt[17:19])
                if sec0 is None:
                    sec0 = sec
                tt = a.start_ms + int((sec - sec0) * 1000.0 / scale + rnd() * quantum)
                if last is not None and tt < last:
                    tt = last            # input not sorted: keep the stream monotone
                last = tt
                term = self.term(int(c[i_te]))
                card = self.card(int(c[i_cu]))
                cur = term.cur if rnd() >= P_FOREIGN else CURRENCIES[self.rng.randrange(len(CURRENCIES))]
                self.n_fdh_rows += 1
                self.base_purchase(tt, term, card, amt, cur)

    def run(self):
        a = self.a
        self.limit = a.count
        self.n_fdh_rows = 0
        self.n_fdh_skipped = 0
        if self.fdh:
            if a.count == 0:
                self.limit = 1 << 62
            self.run_fdh(a.base[4:])
        else:
            self.run_synthetic()
        self.release_until(None)
        self.flush(None)

    # -- scenarios ------------------------------------------------------------------------

    def scenario(self, t, term, card):
        if self.scen_n < len(self.catalogue):
            order = [self.catalogue[self.scen_n % len(self.catalogue)]]
        else:
            order = []
        for _ in range(12):
            u = self.rnd() * self.cum_total
            for i, c in enumerate(self.cum):
                if u < c:
                    order.append(self.catalogue[i])
                    break
        for name, _, fn in order:
            for _attempt in range(6):
                b = Builder(self, name, t + self.rng.randint(1, 2000), term, card)
                try:
                    fn(b)
                    b.commit()
                except Infeasible:
                    break
                except Conflict:
                    card = self.card(self.random_card_idx())
                    continue
                self.scen_n += 1
                self.c_scen[name] = self.c_scen.get(name, 0) + 1
                return

    def random_card_idx(self):
        if self.fdh:
            return self.seen_cards[self.rng.randrange(len(self.seen_cards))]
        return self.rng.randrange(self.a.cards)

    def random_term_idx(self):
        if self.fdh:
            return self.seen_terms[self.rng.randrange(len(self.seen_terms))]
        return self.rng.randrange(self.a.merchants * self.a.terminals_per_merchant)

    # -- malformed lines ---------------------------------------------------------------------

    def malformed(self, t):
        rng = self.rng
        u = self.rnd() * MALFORMED_TOTAL
        kind = MALFORMED[-1][0]
        for k, c in MALFORMED_CUM:
            if u < c:
                kind = k
                break
        self.c_bad[kind] = self.c_bad.get(kind, 0) + 1
        term = self.term(self.random_term_idx())
        card = self.card(self.random_card_idx())
        txn = self.new_txn()
        amount = self.draw_amount("EUR")
        f = [["txn_id", '"%s"' % txn], ["kind", '"purchase"'], ["status", '"approved"'],
             ["merchant_id", '"%s"' % term.mid], ["terminal_id", '"%s"' % term.tid],
             ["stan", '"%06d"' % rng.randrange(1, 1000000)], ["rrn", '"%s"' % self.new_rrn()],
             ["card_token", '"%s"' % card.token], ["pan_masked", '"%s"' % card.pan],
             ["amount", str(amount)], ["currency", '"EUR"'],
             ["event_time", '"%s"' % format_time(t)], ["entry_mode", '"chip"']]

        def setf(name, value):
            for p in f:
                if p[0] == name:
                    p[1] = value
                    return
            f.insert(len(f) - 2, [name, value])

        def text():
            return "{" + ",".join('"%s":%s' % (k, v) for k, v in f) + "}"

        required = ("txn_id", "kind", "status", "merchant_id", "terminal_id", "stan", "rrn",
                    "card_token", "amount", "currency", "event_time")
        if kind == "not_json":
            s = rng.choice((
                "txn_id=%s kind=purchase amount=%d currency=EUR" % (txn, amount),
                "HTTP/1.1 504 Gateway Timeout",
                "<txn id='%s' amount='%d'/>" % (txn, amount),
                "{'txn_id': '%s', 'amount': %d}" % (txn, amount),
                "%s,purchase,approved,%s,%d,EUR" % (txn, term.mid, amount),
                "--- heartbeat %d ---" % t,
                '{"txn_id":"%s","amount":NaN}' % txn,
                '{txn_id:"%s"}' % txn,
            ))
            return s.encode() + b"\n"
        if kind == "truncated":
            s = text()
            return s[:rng.randrange(1, len(s))].encode() + b"\n"
        if kind == "binary":
            n = rng.randrange(1, 300)
            bs = bytearray(rng.randrange(256) for _ in range(n))
            bs = bs.replace(b"\n", b"\x00")
            pos = rng.randrange(len(bs) + 1)
            bs[pos:pos] = b"\xff\x00\xc3("
            return bytes(bs) + b"\n"
        if kind == "nul_in_string":
            s = text().encode()
            return s.replace(b'"M', b'"M\x00', 1) + b"\n"
        if kind == "invalid_utf8":
            bad = rng.choice((b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"\x80"))
            s = text().encode()
            return s.replace(b'"tok_', b'"tok_' + bad, 1) + b"\n"
        if kind == "not_object":
            return rng.choice(("[" + text() + "]", "null", "42", '"%s"' % txn, "true", "[]")).encode() + b"\n"
        if kind == "missing_field":
            name = rng.choice(required)
            f[:] = [p for p in f if p[0] != name]
        elif kind == "null_field":
            setf(rng.choice(required), "null")
        elif kind == "wrong_type":
            name, value = rng.choice((
                ("stan", "%d" % rng.randrange(1, 999999)), ("txn_id", "%d" % rng.randrange(10 ** 9)),
                ("merchant_id", '["%s"]' % term.mid), ("terminal_id", "{}"),
                ("card_token", "true"), ("rrn", "%d" % rng.randrange(10 ** 11, 10 ** 12)),
                ("kind", "1"), ("status", "false"), ("currency", "978"),
                ("event_time", "true"), ("event_time", '{"ms":%d}' % t), ("event_time", "[%d]" % t),
                ("amount", '"%d"' % amount), ("amount", "[%d]" % amount),
                ("expected_amount", '"%d"' % amount), ("retransmission", '"yes"'),
                ("retransmission", "1"), ("entry_mode", "3"), ("order_id", "12345"),
                ("pan_masked", "1234"),
            ))
            setf(name, value)
        elif kind == "empty_string":
            setf(rng.choice(("txn_id", "merchant_id", "terminal_id", "stan", "rrn", "card_token",
                             "currency", "kind", "status")), '""')
        elif kind == "bad_enum":
            name, value = rng.choice((
                ("kind", '"sale"'), ("kind", '"Purchase"'), ("kind", '"PURCHASE"'), ("kind", '"refund "'),
                ("kind", '"chargeback"'), ("status", '"APPROVED"'), ("status", '"ok"'),
                ("status", '"pending"'), ("entry_mode", '"magstripe"'), ("entry_mode", '"NFC"'),
                ("entry_mode", '"chip "'),
            ))
            setf(name, value)
        elif kind == "bad_amount":
            name, value = rng.choice((
                ("amount", "0"), ("amount", "-%d" % amount), ("amount", "%d.5" % amount),
                ("amount", "%d.0" % amount), ("amount", "1e3"), ("amount", "-0"),
                ("amount", '"%d"' % amount), ("amount", "true"), ("amount", "9223372036854775808"),
                ("amount", "123456789012345678901234567890"), ("amount", "12.34"),
                ("expected_amount", "-1"), ("expected_amount", "%d.25" % amount),
            ))
            setf(name, value)
        elif kind == "bad_currency":
            setf("currency", rng.choice(('"eur"', '"EURO"', '"EU"', '"E1R"', '"EUr"', '"\u20ac\u20ac\u20ac"',
                                         '" EUR"')))
        elif kind == "bad_time":
            d = format_time(t)
            setf("event_time", rng.choice((
                '"%s %s"' % (d[:10], d[11:]), '"%s"' % d[:-1], '"22/11/2026 10:00:00"',
                '"2026-11-31T10:00:00.000Z"', '"2026-11-22T24:00:00.000Z"', '"2026-02-29T10:00:00.000Z"',
                '"yesterday"', '"%s+0100"' % d[:-1], '"%d"' % t, "%d.5" % t, "-1", "1e12",
                '"2026-11-22T10:61:00.000Z"', '"2026-11-22"',
            )))
        elif kind == "oversize":
            name = rng.choice(("order_id", "merchant_id", "terminal_id", "card_token", "stan", "rrn",
                               "txn_id", "order_id_utf8", "order_id_escaped"))
            if name == "order_id_utf8":
                setf("order_id", '"%s"' % ("\u00e9" * 33))
            elif name == "order_id_escaped":
                setf("order_id", '"%s"' % ("\\u00e9" * 33))
            elif name == "txn_id":
                setf("txn_id", '"%s"' % (txn + "x" * 49))
            else:
                setf(name, '"%s"' % ("X" * rng.randrange(65, 200)))
        elif kind == "duplicate_field":
            name = rng.choice(("amount", "txn_id", "kind", "currency", "x_note"))
            val = dict((k, v) for k, v in f).get(name, '"a"')
            f.insert(rng.randrange(1, len(f) + 1), [name, val])
            if name == "x_note":
                f.insert(rng.randrange(1, len(f) + 1), [name, '"b"'])
        elif kind == "missing_original_rrn":
            setf("kind", '"%s"' % rng.choice(("refund", "refund", "void", "reversal")))
            how = rng.randrange(3)
            if how == 1:
                setf("original_rrn", "null")
            elif how == 2:
                setf("original_rrn", '""')
        elif kind == "clear_pan":
            b = rng.choice(BINS)[0]
            pan = luhn_complete(b + "".join(str(rng.randrange(10)) for _ in range(9)))
            how = rng.randrange(4)
            if how == 0 or how == 1:
                setf("pan_masked", '"%s"' % pan)
            elif how == 2:
                setf("card_token", '"%s"' % pan)
            else:
                setf("pan_masked", '"%s"' % rng.choice((pan[:7] + "*****" + pan[-4:],
                                                        pan[:6] + "*****" + pan[-5:],
                                                        pan[:6] + "-" + pan[-4:],
                                                        pan[:6] + "******" + pan[-4:] + " ")))
        elif kind == "control_char":
            setf(rng.choice(("merchant_id", "order_id", "card_token")),
                 '"%s"' % rng.choice(("M00\\u00012", "ab\\tcd", "x\\u007f", "line\\nbreak", "\\u001b[31m")))
        elif kind == "lone_surrogate":
            setf(rng.choice(("merchant_id", "order_id")), '"ab\\ud800cd"')
        elif kind == "trailing_garbage":
            s = text()
            return rng.choice((s + " x", s + s, s + ",", s + "}", s + " // ok")).encode() + b"\n"
        elif kind == "line_too_long":
            f.insert(rng.randrange(1, len(f)), ["padding", '"%s"' % ("A" * rng.randrange(66000, 90000))])
        return text().encode("utf-8") + b"\n"

    # -- summary ----------------------------------------------------------------------------

    def summary(self, secs):
        kinds = " ".join("%s/%s=%d" % (k, s, n) for (k, s), n in sorted(self.c_kind.items()))
        bad = ",".join("%s=%d" % kv for kv in sorted(self.c_bad.items()))
        scen = ",".join("%s=%d" % kv for kv in sorted(self.c_scen.items()))
        extra = ""
        if self.fdh:
            extra = " fdh_rows=%d fdh_zero_skipped=%d" % (self.n_fdh_rows, self.n_fdh_skipped)
        return ("posgen: seed=%d lines=%d base=%d scenario_records=%d %s redelivered=%d "
                "changed_redeliveries=%d disordered=%d late=%d (planned %d) malformed=%d [%s] "
                "nudged=%d%s scenarios=%d [%s] span=%s..%s seconds=%.1f%s"
                % (self.a.seed, self.n_lines, self.n_base, self.n_scen_records, kinds,
                   self.n_redeliver, self.n_mutated, self.n_disorder, self.n_late,
                   self.n_late_planned, sum(self.c_bad.values()), bad, self.n_nudged, extra,
                   self.scen_n, scen, format_time(self.t_start),
                   format_time(self.max_t if self.max_t is not None else self.t_start), secs,
                   " BUG: %d disordered records ended up late" % self.n_disorder_late
                   if self.n_disorder_late else ""))


def _split_top(s):
    """[key, raw value text] pairs of a flat-ish JSON object text, keeping the
    exact text of each value."""
    dec = json.JSONDecoder()
    pairs = []
    i = 1
    n = len(s)
    while i < n:
        while s[i] in " ,":
            i += 1
        if s[i] == "}":
            break
        key, i = json.decoder.scanstring(s, i + 1)
        while s[i] in " :":
            i += 1
        _, j = dec.raw_decode(s, i)
        pairs.append((key, s[i:j]))
        i = j
    return pairs


MALFORMED = (
    ("not_json", 1.0), ("truncated", 2.0), ("binary", 1.0), ("nul_in_string", 0.5),
    ("invalid_utf8", 0.7), ("not_object", 0.5), ("missing_field", 2.0), ("null_field", 0.7),
    ("wrong_type", 2.0), ("empty_string", 1.0), ("bad_enum", 1.0), ("bad_amount", 2.0),
    ("bad_currency", 1.0), ("bad_time", 1.5), ("oversize", 1.0), ("duplicate_field", 1.0),
    ("missing_original_rrn", 1.0), ("clear_pan", 1.0), ("control_char", 0.5),
    ("lone_surrogate", 0.3), ("trailing_garbage", 0.5), ("line_too_long", 0.15),
)
MALFORMED_CUM = []
_acc = 0.0
for _k, _w in MALFORMED:
    _acc += _w
    MALFORMED_CUM.append((_k, _acc))
MALFORMED_TOTAL = _acc


# ---------------------------------------------------------------------------
# Scenario builder and catalogue
# ---------------------------------------------------------------------------

class Builder:
    def __init__(self, g, name, t0, term, card):
        self.g = g
        self.rng = g.rng
        self.name = name
        self.t0 = t0
        self.term = term
        self.card = card
        self.cur = term.cur
        self.recs = []
        self.expect = []
        self.refund = False
        self.note = ""
        self.amt = g.draw_amount(self.cur)

    # record constructors ---------------------------------------------------

    def charge(self, dt, term=None, card=None, amount=None, cur=None, stan=None, order=None,
               exp=None, retrans=None, status="approved", entry=-1):
        g = self.g
        r = Rec()
        r.t = self.t0 + dt
        r.txn = g.new_txn()
        r.kind = "purchase"
        r.status = status
        r.term = term or self.term
        r.stan = stan
        r.rrn = g.new_rrn()
        r.card = card or self.card
        r.amount = self.amt if amount is None else amount
        r.cur = cur or self.cur
        r.exp = exp
        r.order = order
        r.entry = ENTRY_TABLE[int(g.rnd() * 97)] if entry == -1 else entry
        r.retrans = retrans
        self.recs.append(r)
        return r

    def op(self, kind, dt, orig, amount=None, card=None, term=None, status="approved"):
        g = self.g
        r = Rec()
        r.t = self.t0 + dt
        r.txn = g.new_txn()
        r.kind = kind
        r.status = status
        if isinstance(orig, Rec):
            r.term = term or orig.term
            r.card = card or orig.card
            r.amount = orig.amount if amount is None else amount
            r.cur = orig.cur
        else:
            r.term = term or self.term
            r.card = card or self.card
            r.amount = self.amt if amount is None else amount
            r.cur = self.cur
        r.rrn = g.new_rrn()
        r.orig = orig
        r.entry = ENTRY_TABLE[int(g.rnd() * 97)] if kind == "refund" else None
        self.recs.append(r)
        return r

    def order(self):
        return '"' + self.g.new_order(self.term.midx) + '"'

    def other_term(self):
        tpm = self.g.a.terminals_per_merchant
        if tpm < 2:
            raise Infeasible()
        base = self.term.midx * tpm
        i = self.term.idx - base
        j = (i + 1 + self.rng.randrange(tpm - 1)) % tpm
        return self.g.term(base + j)

    def any_other_term(self):
        """A terminal at the same merchant, or the same terminal."""
        if self.g.a.terminals_per_merchant > 1 and self.rng.random() < 0.5:
            return self.other_term()
        return self.term

    def other_merchant_term(self):
        for _ in range(20):
            t = self.g.term(self.g.random_term_idx())
            if t.midx != self.term.midx:
                return t
        raise Infeasible()

    def other_card(self):
        for _ in range(20):
            c = self.g.card(self.g.random_card_idx())
            if c.idx != self.card.idx:
                return c
        return self.g.fresh_card()

    def integrated(self):
        """(order JSON, expected) for an integrated terminal, else (None, None)."""
        if self.term.integ:
            return self.order(), self.amt
        return None, None

    def u(self, lo, hi):
        return self.rng.randint(lo, hi)

    # commit ---------------------------------------------------------------------

    def commit(self):
        g = self.g
        own = {}
        for r in self.recs:
            if r.kind == "purchase" and r.status == "approved" and r.dup_of is None:
                key = (r.term.midx, r.card.idx, r.amount, r.cur)
                own.setdefault(key, set()).add(r.t)
        for key, times in own.items():
            for t in times:
                if g.guard_hit(key, t):
                    raise Conflict()
        for key, times in own.items():
            g.guard.setdefault(key, []).extend(sorted(times))
        counts = {}
        for r in self.recs:
            counts[r.t] = counts.get(r.t, 0) + 1
        for r in self.recs:
            if counts[r.t] > 1:
                r.perturb = False
            g.schedule(r)
        ordered = sorted(range(len(self.recs)), key=lambda i: (self.recs[i].t, i))
        if g.labels is not None:
            label = {"scenario": self.name,
                     "txn_ids": [self.recs[i].txn for i in ordered
                                 if self.recs[i].dup_of is None],
                     "expect": self.expect, "refund": self.refund, "note": self.note,
                     "start": format_time(self.recs[ordered[0]].t)}
            g.labels.write(json.dumps(label) + "\n")


def _retry_dt(b):
    r = b.rng.random()
    if r < 0.7:
        return b.u(200, 10000)
    if r < 0.9:
        return b.u(10001, 300000)
    return b.u(300001, 899999)


def sc_retry_duplicate(b, dt=None, name_note=""):
    dt = _retry_dt(b) if dt is None else dt
    o, e = b.integrated()
    p1 = b.charge(0, order=o, exp=e)
    b.charge(dt, stan=p1, order=o, exp=e, entry=p1.entry,
             retrans=True if b.rng.random() < 0.5 else None)
    b.expect = ["retry_duplicate"]
    b.refund = True
    b.note = "retransmission %d ms later, same STAN; refund the second in full%s" % (dt, name_note)


def sc_retry_window_edge(b):
    sc_retry_duplicate(b, 900000, " (exactly the 15 min window: inclusive)")


def sc_retry_outside_window(b):
    sc_retry_duplicate(b, 900001)
    b.expect = []
    b.refund = False
    b.note = "same STAN 900001 ms later: outside the 15 min window, nothing"


def sc_retry_same_time(b):
    sc_retry_duplicate(b, 0)
    b.note = "equal event time: the later in input order is the duplicate; refund it"


def sc_retry_chain(b):
    n = b.u(3, 5)
    o, e = b.integrated()
    p1 = b.charge(0, order=o, exp=e)
    dt = 0
    for _ in range(n - 1):
        dt += b.u(300, 20000)
        b.charge(dt, stan=p1, order=o, exp=e, entry=p1.entry, retrans=True)
    b.expect = ["retry_duplicate"] * (n - 1)
    b.refund = True
    b.note = "%d transmissions of one request: %d duplicates, each refunded in full" % (n, n - 1)


def sc_retry_then_swipe(b):
    p1 = b.charge(0)
    b.charge(b.u(500, 5000), stan=p1, retrans=True, entry=p1.entry)
    b.charge(b.u(15000, 40000), stan=("ne", p1))
    b.expect = ["retry_duplicate", "repeated_swipe"]
    b.refund = True
    b.note = "retransmission, then a new swipe within 60 s (no order ids): both refunded"


def _swipe(b, dt, orders, note, expect, refund, term2=None):
    if orders == "same":
        o = b.order()
        o1, o2, e = o, o, b.amt
    elif orders == "escaped":
        s = "Bäckerei \"Zürich\" #%d/ü" % b.rng.randrange(1, 10 ** 6)
        o1, o2, e = json.dumps(s, ensure_ascii=False), json.dumps(s, ensure_ascii=True).replace("/", "\\/"), b.amt
        if b.rng.random() < 0.5:
            o1, o2 = o2, o1
    elif orders == "one":
        o = b.order()
        o1, o2 = (o, None) if b.rng.random() < 0.5 else (None, o)
        e = None
    elif orders == "empty":
        o1 = '""'
        o2 = b.rng.choice(('""', "null", None))
        if b.rng.random() < 0.5:
            o1, o2 = o2, o1
        e = None
    elif orders == "different":
        o1, o2, e = b.order(), b.order(), b.amt
    else:
        o1 = o2 = e = None
    p1 = b.charge(0, order=o1, exp=e if o1 not in (None, '""', "null") else None)
    t2 = term2 if term2 is not None else b.any_other_term()
    b.charge(dt, term=t2, stan=("ne", p1), order=o2, exp=e if o2 not in (None, '""', "null") else None)
    b.expect = expect
    b.refund = refund
    b.note = note % {"dt": dt}


def sc_swipe_refund(b):
    _swipe(b, b.u(1000, 60000), None, "new STAN %(dt)d ms later, no order ids: refund", ["repeated_swipe"], True)


def sc_swipe_edge_60000(b):
    _swipe(b, 60000, None, "exactly auto_refund_within (60000 ms), no order ids: refund",
           ["repeated_swipe"], True)


def sc_swipe_edge_60001(b):
    _swipe(b, 60001, None, "60001 ms, no order ids: alert, no refund", ["repeated_swipe"], False)


def sc_swipe_no_refund(b):
    _swipe(b, b.u(60001, 120000), None, "%(dt)d ms > 60 s, no order ids: alert only",
           ["repeated_swipe"], False)


def sc_swipe_edge_120000(b):
    _swipe(b, 120000, None, "exactly the 120 s window: alert only", ["repeated_swipe"], False)


def sc_swipe_outside(b):
    _swipe(b, 120001, None, "120001 ms: outside the window, nothing", [], False)


def sc_swipe_same_order(b):
    _swipe(b, b.u(1000, 120000), "same", "same order_id on both, %(dt)d ms: refund",
           ["repeated_swipe"], True)


def sc_swipe_same_order_escaped(b):
    _swipe(b, b.u(1000, 120000), "escaped",
           "same order_id (non-ASCII, quotes, slash) escaped differently in the two lines: refund",
           ["repeated_swipe"], True)


def sc_swipe_one_order(b):
    _swipe(b, b.u(1000, 60000), "one", "only one carries an order_id (%(dt)d ms): alert, no refund",
           ["repeated_swipe"], False)


def sc_swipe_empty_order(b):
    _swipe(b, b.u(1000, 60000), "empty",
           "order_id \"\"/null means absent: neither has one, %(dt)d ms: refund", ["repeated_swipe"], True)


def sc_swipe_chain(b):
    n = 3 if b.rng.random() < 0.8 else 4
    p1 = b.charge(0)
    dts = sorted(b.rng.sample(range(2000, 59000, 7), n - 1))
    for dt in dts:
        b.charge(dt, term=b.any_other_term(), stan=("ne", p1))
    b.expect = ["repeated_swipe"] * (n - 1)
    b.refund = True
    b.note = "%d swipes within 60 s, no order ids: each later one is a duplicate, refunded" % n


def sc_same_amount_different_orders(b):
    _swipe(b, b.u(5000, 110000), "different",
           "two genuine orders (different order_ids), same card and amount: nothing", [], False)


def _overcharge(b, exp, amount, note, expect, refund):
    o = b.order()
    b.charge(0, order=o, exp=exp, amount=amount)
    b.expect = expect
    b.refund = refund
    b.note = note


def sc_overcharge_x10(b):
    e = b.u(200, 30000)
    _overcharge(b, e, e * 10, "extra zero: %d keyed for %d (critical); refund the difference" % (e * 10, e),
                ["overcharge"], True)


def sc_overcharge_x100(b):
    e = b.u(100, 5000)
    _overcharge(b, e, e * 100, "decimal point lost: %d for %d (critical); refund the difference" % (e * 100, e),
                ["overcharge"], True)


def sc_overcharge_small(b):
    e = b.u(300, 50000)
    d = b.u(1, 999)
    _overcharge(b, e, e + d, "%d over the order total (high); refund %d" % (d, d), ["overcharge"], True)


def sc_overcharge_expected_zero(b):
    a = b.u(100, 5000)
    _overcharge(b, 0, a, "register total 0, charged %d: overcharge (high, no power of ten), refund all" % a,
                ["overcharge"], True)


def sc_undercharge_div10(b):
    e = b.u(100, 50000) * 10
    _overcharge(b, e, e // 10, "missing zero: %d keyed for %d (critical); alert only" % (e // 10, e),
                ["undercharge"], False)


def sc_undercharge_small(b):
    e = b.u(300, 50000)
    d = b.u(1, min(999, e - 1))
    _overcharge(b, e, e - d, "%d under the order total (high); alert only" % d, ["undercharge"], False)


def sc_refund_exceeds(b):
    p = b.charge(0, amount=max(b.amt, 200))
    a = p.amount
    if b.rng.random() < 0.5:
        r1 = int(a * (0.5 + 0.3 * b.rng.random()))
        r2 = a - r1 + b.u(1, max(1, a // 3))
        t1 = b.u(60000, 1800000)
        b.op("refund", t1, p, amount=r1)
        b.op("refund", t1 + b.u(1000, 1800000), p, amount=r2)
        b.note = "two refunds %d + %d of a %d charge" % (r1, r2, a)
    else:
        r1 = a + b.u(1, a)
        b.op("refund", b.u(60000, 1800000), p, amount=r1)
        b.note = "one refund %d of a %d charge" % (r1, a)
    b.expect = ["refund_exceeds_original"]
    b.refund = False


def sc_refund_partial_sum_exact(b):
    p = b.charge(0, amount=max(b.amt, 200))
    a = p.amount
    r1 = b.u(1, a - 1)
    t1 = b.u(60000, 1800000)
    b.op("refund", t1, p, amount=r1)
    b.op("refund", t1 + b.u(1000, 600000), p, amount=a - r1)
    b.expect = []
    b.refund = False
    b.note = "two refunds summing exactly to the charge (%d + %d = %d): nothing" % (r1, a - r1, a)


def sc_refund_card_mismatch(b):
    p = b.charge(0)
    b.op("refund", b.u(60000, 1800000), p, amount=b.u(1, p.amount), card=b.other_card())
    b.expect = ["refund_card_mismatch"]
    b.refund = False
    b.note = "refund to another card than the one charged"


def sc_refund_mismatch_and_exceeds(b):
    p = b.charge(0)
    b.op("refund", b.u(60000, 1800000), p, amount=p.amount + b.u(1, p.amount), card=b.other_card())
    b.expect = ["refund_exceeds_original", "refund_card_mismatch"]
    b.refund = False
    b.note = "refund above the charge, to another card: two alerts"


def sc_refund_without_original(b):
    b.op("refund", 0, b.g.unused_rrn())
    b.expect = ["refund_without_original"]
    b.refund = False
    b.note = "original_rrn was never issued"


def sc_refund_of_declined(b):
    p = b.charge(0, status="declined")
    b.op("refund", b.u(30000, 600000), p, amount=p.amount)
    b.expect = ["refund_without_original"]
    b.refund = False
    b.note = "refund of a declined purchase's rrn: no charge has it"


def sc_refund_before_original(b):
    p = b.charge(b.u(1000, 30000))
    r = b.op("refund", 0, p, amount=p.amount)
    b.recs.remove(r)
    b.recs.insert(0, r)
    b.expect = ["refund_without_original"]
    b.refund = False
    b.note = "the refund's event time precedes its charge: not within [t(R)-lookback, t(R)]"


def sc_refund_same_time(b):
    p = b.charge(0)
    r = b.op("refund", 0, p, amount=b.u(1, p.amount))
    b.recs.remove(r)
    b.recs.insert(0, r)
    b.expect = []
    b.refund = False
    b.note = "refund first in the input, charge at the same event time: the charge is known, nothing"


def _declines(b, dts, status="declined", card=None):
    card = card or b.g.fresh_card()
    out = []
    for dt in dts:
        out.append(b.charge(dt, card=card, status=status, amount=b.u(100, 2500), entry="ecom"))
    return card, out


def sc_card_testing_burst(b):
    n = b.u(5, 8)
    dts = sorted(b.rng.sample(range(0, 590000, 13), n))
    dts = [d - dts[0] for d in dts]
    card, _ = _declines(b, dts)
    if b.rng.random() < 0.3:
        b.charge(dts[-1] + b.u(1000, 30000), card=card, amount=b.u(100, 999), entry="ecom")
    b.expect = ["card-testing"]
    b.refund = False
    b.note = "%d declined purchases on a fresh card within %d ms: one alert" % (n, dts[-1])


def sc_card_testing_edge(b):
    mid = sorted(b.rng.sample(range(1000, 599000, 11), 3))
    _declines(b, [0] + mid + [600000])
    b.expect = ["card-testing"]
    b.refund = False
    b.note = "5 declines, first to fifth exactly 600000 ms (window inclusive): one alert"


def sc_card_testing_spread(b):
    mid = sorted(b.rng.sample(range(1000, 599000, 11), 3))
    _declines(b, [0] + mid + [600001])
    b.expect = []
    b.refund = False
    b.note = "5 declines, first to fifth 600001 ms: never 5 within 10 min, nothing"


def sc_card_testing_four(b):
    _declines(b, sorted(b.rng.sample(range(0, 300000, 7), 4)))
    b.expect = []
    b.refund = False
    b.note = "4 declines within 10 min: below the threshold"


def sc_card_testing_errors(b):
    _declines(b, sorted(b.rng.sample(range(0, 300000, 7), 5)), status="error")
    b.expect = []
    b.refund = False
    b.note = "5 purchases with status error (not declined): the rule counts declined only"


def sc_card_testing_rearm(b):
    d1 = sorted(b.rng.sample(range(0, 120000, 7), 5))
    d2 = sorted(b.rng.sample(range(0, 120000, 7), 5))
    gap = d1[-1] + 600001 + b.u(1, 60000)
    card, _ = _declines(b, d1)
    _declines(b, [gap + d for d in d2], card=card)
    b.expect = ["card-testing", "card-testing"]
    b.refund = False
    b.note = "two bursts of 5 more than 10 min apart: re-armed, two alerts"


def sc_declined_then_approved(b):
    o, e = b.integrated()
    p1 = b.charge(0, status="declined", order=o, exp=e)
    same = b.rng.random() < 0.5
    b.charge(b.u(3000, 40000), stan=p1 if same else None, order=o, exp=e)
    b.expect = []
    b.refund = False
    b.note = "first attempt declined, second approved (%s STAN): one charge, nothing" % ("same" if same else "new")


def _retry_after_cancel(b, kind, same_time=False):
    p1 = b.charge(0)
    tc = b.u(1000, 20000)
    if same_time:
        p2 = b.charge(tc, stan=p1, retrans=True, entry=p1.entry)
        b.op(kind, tc, p1)
    else:
        b.op(kind, tc, p1)
        p2 = b.charge(tc + b.u(1, 30000), stan=p1, retrans=True, entry=p1.entry)
    return p1, p2


def sc_retry_after_reversal(b):
    _retry_after_cancel(b, "reversal")
    b.expect = []
    b.refund = False
    b.note = "the original was reversed before the retransmission: nothing to pair with"


def sc_retry_after_void(b):
    _retry_after_cancel(b, "void")
    b.expect = []
    b.refund = False
    b.note = "the original was voided before the retransmission: nothing to pair with"


def sc_retry_after_reversal_same_time(b):
    _retry_after_cancel(b, "reversal", same_time=True)
    b.expect = []
    b.refund = False
    b.note = ("reversal of the original at the retransmission's event time, after it in the input: "
              "cancelled at t2 (<= t2), nothing")


def sc_swipe_after_void(b):
    p1 = b.charge(0)
    tv = b.u(3000, 20000)
    b.op("void", tv, p1)
    b.charge(tv + b.u(2000, 30000), term=b.any_other_term(), stan=("ne", p1))
    b.expect = []
    b.refund = False
    b.note = "first charge voided, then swiped again: one charge, nothing"


def _dup(b, swipe=False):
    p1 = b.charge(0)
    if swipe:
        p2 = b.charge(b.u(1000, 50000), term=b.any_other_term(), stan=("ne", p1))
    else:
        p2 = b.charge(b.u(300, 10000), stan=p1, retrans=True, entry=p1.entry)
    return p1, p2


def sc_retry_original_voided_before(b):
    p1, p2 = _dup(b)
    b.op(b.rng.choice(("void", "reversal")), p2.t - b.t0 + b.u(1, 119999), p1)
    b.expect = ["retry_duplicate"]
    b.refund = False
    b.note = "original cancelled after the duplicate, before the decision: alert, no refund"


def sc_retry_original_voided_at(b):
    p1, p2 = _dup(b)
    b.op("void", p2.t - b.t0 + 120000, p1)
    b.expect = ["retry_duplicate"]
    b.refund = False
    b.note = "original voided exactly at the decision time D = t2 + 120 s (<= D): no refund"


def sc_retry_original_voided_after(b):
    p1, p2 = _dup(b)
    b.op("void", p2.t - b.t0 + 120001, p1)
    b.expect = ["retry_duplicate"]
    b.refund = True
    b.note = "original voided 1 ms after the decision time: the refund was already decided"


def sc_swipe_original_voided_before(b):
    p1, p2 = _dup(b, swipe=True)
    b.op("void", p2.t - b.t0 + b.u(1, 119999), p1)
    b.expect = ["repeated_swipe"]
    b.refund = False
    b.note = "first swipe voided after the second, before the decision: alert, no refund"


def sc_duplicate_voided_itself(b):
    swipe = b.rng.random() < 0.3
    p1, p2 = _dup(b, swipe)
    b.op(b.rng.choice(("void", "reversal")), p2.t - b.t0 + b.u(1000, 110000), p2)
    b.expect = ["repeated_swipe" if swipe else "retry_duplicate"]
    b.refund = False
    b.note = "the duplicate itself is cancelled before the decision: alert, nothing to refund"


def sc_duplicate_manual_full(b):
    p1, p2 = _dup(b)
    b.op("refund", p2.t - b.t0 + b.u(2000, 110000), p2, amount=p2.amount)
    b.expect = ["retry_duplicate"]
    b.refund = False
    b.note = "merchant refunds the duplicate in full before the decision: no refund command"


def sc_duplicate_manual_partial(b):
    p1, p2 = _dup(b)
    part = b.u(1, max(1, p2.amount - 1)) if p2.amount > 1 else 1
    b.op("refund", p2.t - b.t0 + b.u(2000, 110000), p2, amount=part)
    b.expect = ["retry_duplicate"]
    b.refund = p2.amount - part > 0
    b.note = "merchant refunds %d of the duplicate before the decision: refund shrinks to %d" % (
        part, p2.amount - part)


def sc_duplicate_manual_at(b):
    p1, p2 = _dup(b)
    b.op("refund", p2.t - b.t0 + 120000, p2, amount=p2.amount)
    b.expect = ["retry_duplicate"]
    b.refund = False
    b.note = "merchant refunds the duplicate in full exactly at D (counts): no refund command"


def sc_duplicate_manual_after(b):
    p1, p2 = _dup(b)
    b.op("refund", p2.t - b.t0 + 120000 + b.u(1000, 600000), p2, amount=p2.amount)
    b.expect = ["retry_duplicate", "refund_exceeds_original"]
    b.refund = True
    b.note = ("engine refunds the duplicate at D, the merchant refunds it again later: "
              "refund_exceeds_original on the manual refund")


def sc_overcharged_duplicate(b):
    e = b.u(200, 20000)
    a = e * 10
    o = b.order()
    p1 = b.charge(0, order=o, exp=e, amount=a)
    if b.rng.random() < 0.6:
        b.charge(b.u(300, 10000), stan=p1, order=o, exp=e, amount=a, retrans=True, entry=p1.entry)
        f = "retry_duplicate"
    else:
        b.charge(b.u(1000, 100000), term=b.any_other_term(), stan=("ne", p1), order=o, exp=e, amount=a)
        f = "repeated_swipe"
    b.expect = ["overcharge", f, "overcharge"]
    b.refund = True
    b.note = ("overcharged (%d for %d) and duplicated: partial refund %d of the first, "
              "ONE full refund of the second" % (a, e, a - e))


def sc_overcharge_voided_recharged(b):
    e = b.u(200, 20000)
    o = b.order()
    p1 = b.charge(0, order=o, exp=e, amount=e * 10)
    tv = b.u(10000, 60000)
    b.op("void", tv, p1)
    b.charge(tv + b.u(5000, 40000), order=o, exp=e, amount=e, stan=("ne", p1))
    b.expect = ["overcharge"]
    b.refund = False
    b.note = "overcharge voided by the cashier and charged again correctly: alert, no refund"


def sc_overcharge_refunded_by_merchant(b):
    e = b.u(300, 20000)
    d = b.u(1, 5000)
    o = b.order()
    p = b.charge(0, order=o, exp=e, amount=e + d)
    b.op("refund", b.u(5000, 110000), p, amount=d)
    b.expect = ["overcharge"]
    b.refund = False
    b.note = "merchant refunds the %d difference before the decision: nothing left to refund" % d


def sc_same_amount_other_currency(b):
    p1 = b.charge(0)
    other = [c for c in CURRENCIES if c != p1.cur]
    b.charge(b.u(2000, 50000), term=b.any_other_term(), stan=("ne", p1), cur=b.rng.choice(other))
    b.expect = []
    b.refund = False
    b.note = "same card, merchant and amount, other currency: not a duplicate"


def sc_same_amount_other_merchant(b):
    p1 = b.charge(0)
    b.charge(b.u(2000, 50000), term=b.other_merchant_term(), cur=p1.cur)
    b.expect = []
    b.refund = False
    b.note = "same card and amount at another merchant: not a duplicate"


def sc_swipe_other_terminal_same_stan(b):
    p1 = b.charge(0)
    b.charge(b.u(2000, 50000), term=b.other_term(), stan=p1)
    b.expect = []
    b.refund = False
    b.note = ("other terminal of the merchant whose STAN string equals the first: not a retry "
              "(other terminal), not a swipe (same STAN)")


def sc_redelivery_changed(b):
    o = b.order()
    p = b.charge(0, order=o, exp=b.amt)
    p.perturb = False
    r = Rec()
    r.t = p.t
    r.kind, r.status, r.term, r.card, r.cur = p.kind, p.status, p.term, p.card, p.cur
    r.amount = p.amount * 10
    r.txn = p.txn
    r.dup_of = p
    r.perturb = False
    b.recs.append(r)
    b.expect = []
    b.refund = False
    b.note = "the same txn_id again (amount*10): a transport duplicate, dropped whatever its fields"


# (name, weight, function); the first ones cover every finding.
SCENARIOS = [
    ("retry_duplicate", 10, sc_retry_duplicate),
    ("repeated_swipe_refund", 6, sc_swipe_refund),
    ("overcharge_x10", 4, sc_overcharge_x10),
    ("undercharge_small", 3, sc_undercharge_small),
    ("refund_exceeds_original", 4, sc_refund_exceeds),
    ("refund_card_mismatch", 3, sc_refund_card_mismatch),
    ("refund_without_original", 3, sc_refund_without_original),
    ("card_testing_burst", 3, sc_card_testing_burst),
    ("retry_window_edge", 1.5, sc_retry_window_edge),
    ("retry_outside_window", 1.5, sc_retry_outside_window),
    ("retry_same_time", 1.5, sc_retry_same_time),
    ("retry_chain", 2, sc_retry_chain),
    ("retry_then_swipe", 1.5, sc_retry_then_swipe),
    ("repeated_swipe_edge_60000", 1.5, sc_swipe_edge_60000),
    ("repeated_swipe_edge_60001", 1.5, sc_swipe_edge_60001),
    ("repeated_swipe_no_refund", 3, sc_swipe_no_refund),
    ("repeated_swipe_edge_120000", 1.5, sc_swipe_edge_120000),
    ("repeated_swipe_outside_window", 1.5, sc_swipe_outside),
    ("repeated_swipe_same_order", 3, sc_swipe_same_order),
    ("repeated_swipe_same_order_escaped", 1, sc_swipe_same_order_escaped),
    ("repeated_swipe_one_order", 2, sc_swipe_one_order),
    ("repeated_swipe_empty_order", 1, sc_swipe_empty_order),
    ("repeated_swipe_chain", 2, sc_swipe_chain),
    ("overcharge_x100", 2, sc_overcharge_x100),
    ("overcharge_small", 3, sc_overcharge_small),
    ("overcharge_expected_zero", 0.5, sc_overcharge_expected_zero),
    ("undercharge_div10", 2, sc_undercharge_div10),
    ("refund_mismatch_and_exceeds", 1, sc_refund_mismatch_and_exceeds),
    ("refund_of_declined", 1, sc_refund_of_declined),
    ("refund_before_original", 1, sc_refund_before_original),
    ("refund_same_time_as_original", 1, sc_refund_same_time),
    ("refund_partial_sum_exact", 1.5, sc_refund_partial_sum_exact),
    ("card_testing_edge_600000", 1, sc_card_testing_edge),
    ("card_testing_spread", 1, sc_card_testing_spread),
    ("card_testing_four", 1, sc_card_testing_four),
    ("card_testing_errors", 1, sc_card_testing_errors),
    ("card_testing_rearm", 1, sc_card_testing_rearm),
    ("same_amount_different_orders", 3, sc_same_amount_different_orders),
    ("declined_then_approved", 3, sc_declined_then_approved),
    ("retry_after_reversal", 1.5, sc_retry_after_reversal),
    ("retry_after_void", 1.5, sc_retry_after_void),
    ("retry_after_reversal_same_time", 1, sc_retry_after_reversal_same_time),
    ("swipe_after_void", 1.5, sc_swipe_after_void),
    ("retry_original_voided_before_decision", 1.5, sc_retry_original_voided_before),
    ("retry_original_voided_at_decision", 1, sc_retry_original_voided_at),
    ("retry_original_voided_after_decision", 1, sc_retry_original_voided_after),
    ("swipe_original_voided_before_decision", 1.5, sc_swipe_original_voided_before),
    ("duplicate_voided_itself", 1.5, sc_duplicate_voided_itself),
    ("duplicate_manual_full_refund", 1.5, sc_duplicate_manual_full),
    ("duplicate_manual_partial_refund", 1.5, sc_duplicate_manual_partial),
    ("duplicate_manual_refund_at_decision", 1, sc_duplicate_manual_at),
    ("duplicate_manual_refund_after_decision", 1, sc_duplicate_manual_after),
    ("overcharged_duplicate", 2, sc_overcharged_duplicate),
    ("overcharge_voided_and_recharged", 1, sc_overcharge_voided_recharged),
    ("overcharge_refunded_by_merchant", 1, sc_overcharge_refunded_by_merchant),
    ("same_amount_other_currency", 1, sc_same_amount_other_currency),
    ("same_amount_other_merchant", 1, sc_same_amount_other_merchant),
    ("swipe_other_terminal_same_stan", 1, sc_swipe_other_terminal_same_stan),
    ("redelivery_changed_fields", 1, sc_redelivery_changed),
]


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def prob(s):
    v = float(s)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError("a probability in [0, 1]: %r" % s)
    return v


def positive(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1: %r" % s)
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(prog="posgen.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_argument_group("stream")
    g.add_argument("--count", type=int, default=10000, metavar="N",
                   help="base records (purchases and their refunds/voids/reversals), before "
                        "redeliveries, malformed lines and scenario records (default 10000; "
                        "with --base fdh, 0 = every row)")
    g.add_argument("--seed", type=int, default=1, metavar="S",
                   help="PRNG seed; same seed and arguments = byte-identical output (default 1)")
    g.add_argument("--out", metavar="FILE", help="output file (default stdout)")
    g.add_argument("--labels", metavar="FILE", help="write one JSON label per injected scenario")
    g.add_argument("--start", default="2026-11-22T08:00:00.000Z", metavar="RFC3339",
                   help="event time of the first record (default 2026-11-22T08:00:00.000Z)")
    g.add_argument("--rate", type=float, default=50.0, metavar="R",
                   help="synthetic: mean base records per second of event time (default 50)")
    g.add_argument("--merchants", type=positive, default=500, metavar="M",
                   help="synthetic: number of merchants (default 500)")
    g.add_argument("--terminals-per-merchant", type=positive, default=None, metavar="T",
                   help="terminals per merchant (default 4; 10 with --base fdh, where merchant = "
                        "TERMINAL_ID // T)")
    g.add_argument("--cards", type=positive, default=100000, metavar="C",
                   help="synthetic: number of cards (default 100000)")
    g.add_argument("--base", default="synthetic", metavar="synthetic|fdh:PATH",
                   help="base traffic: synthetic (default) or fdh:PATH (FDH CSV, .gz ok)")
    g.add_argument("--time-scale", type=float, default=60.0, metavar="F",
                   help="fdh: compress FDH time by this factor (default 60)")
    m = ap.add_argument_group("mixture (fractions)")
    m.add_argument("--p-refund", type=prob, metavar="P", default=0.02, help="refunds among base records (0.02)")
    m.add_argument("--p-void", type=prob, metavar="P", default=0.01, help="voids among base records (0.01)")
    m.add_argument("--p-reversal", type=prob, metavar="P", default=0.01, help="reversals among base records (0.01)")
    m.add_argument("--p-decline", type=prob, metavar="P", default=0.05, help="declined purchases (0.05)")
    m.add_argument("--p-error", type=prob, metavar="P", default=0.005, help="purchases with status error (0.005)")
    m.add_argument("--p-redeliver", type=prob, metavar="P", default=0.01,
                   help="records delivered twice (exact copy, same txn_id) (0.01)")
    m.add_argument("--p-disorder", type=prob, metavar="P", default=0.05,
                   help="records emitted up to 4 s late, within allowed lateness (0.05)")
    m.add_argument("--p-late", type=prob, metavar="P", default=0.001,
                   help="base records emitted 10-60 s late, beyond allowed lateness (0.001)")
    m.add_argument("--p-malformed", type=prob, metavar="P", default=0.002,
                   help="malformed lines per base record (0.002)")
    m.add_argument("--p-anomaly", type=prob, metavar="P", default=0.01,
                   help="injected scenarios per base record (0.01)")
    m.add_argument("--p-integrated", type=prob, metavar="P", default=0.5,
                   help="terminals with an integrated register: expected_amount and order_id (0.5)")
    m.add_argument("--p-int-time", type=prob, metavar="P", default=0.08,
                   help="records whose event_time is integer ms instead of RFC 3339 (0.08)")
    m.add_argument("--no-anomalies", action="store_true", help="inject no scenarios")
    m.add_argument("--no-malformed", action="store_true", help="no malformed lines")
    m.add_argument("--only", metavar="NAMES",
                   help="comma-separated scenario names: inject only these")
    m.add_argument("--list-scenarios", action="store_true", help="print the scenario names and exit")
    a = ap.parse_args(argv)

    if a.list_scenarios:
        for name, w, _ in SCENARIOS:
            print("%-42s weight %g" % (name, w))
        return 0
    if a.only is not None:
        a.only = set(x.strip() for x in a.only.split(",") if x.strip())
        unknown = a.only - set(s[0] for s in SCENARIOS)
        if unknown:
            ap.error("unknown scenario(s): %s" % ", ".join(sorted(unknown)))
    if a.base != "synthetic" and not a.base.startswith("fdh:"):
        ap.error("--base must be synthetic or fdh:PATH")
    if a.terminals_per_merchant is None:
        a.terminals_per_merchant = 10 if a.base.startswith("fdh:") else 4
    if a.count < 0 or (a.count == 0 and a.base == "synthetic"):
        ap.error("--count must be >= 1 (0 only with --base fdh)")
    if a.rate <= 0 or a.time_scale <= 0:
        ap.error("--rate and --time-scale must be > 0")
    if a.p_int_time + P_TIME_VARIANT > 1:
        ap.error("--p-int-time too large")
    if a.p_late + a.p_disorder > 1:
        ap.error("--p-late + --p-disorder must be <= 1")
    try:
        a.start_ms = parse_time(a.start)
    except ValueError as e:
        ap.error(str(e))
    if a.no_anomalies:
        a.p_anomaly = 0.0
    if a.no_malformed:
        a.p_malformed = 0.0

    t0 = time.perf_counter()
    out = open(a.out, "wb") if a.out else sys.stdout.buffer
    labels = open(a.labels, "w", encoding="utf-8") if a.labels else None
    try:
        gen = Gen(a, out, labels)
        gen.run()
    finally:
        if a.out:
            out.close()
        else:
            out.flush()
        if labels is not None:
            labels.close()
    print(gen.summary(time.perf_counter() - t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
