#!/usr/bin/env python3
"""show.py [FILE] - a readable one-line-per-event view of posguard's JSON
lines output (alerts and refund commands), with totals at the end.

  ALERT  critical overcharge           M0012/T0003  EUR 1000.00  T3f2...  reason
  REFUND duplicate                     M0012/T0003  EUR   12.50  T3f2...  rf-...
"""
import collections
import json
import sys

ZERO = {"JPY", "KRW", "VND", "CLP", "ISK", "XOF", "XAF", "UGX", "PYG"}


def money(minor, cur):
    if cur in ZERO:
        return f"{cur} {minor:>10d}"
    return f"{cur} {minor / 100:>10.2f}"


def main():
    src = open(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "-" else sys.stdin
    alerts = collections.Counter()
    refunds = collections.Counter()
    refunded = collections.Counter()
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 10 ** 9
    shown = 0
    for line in src:
        o = json.loads(line)
        if o["type"] == "alert":
            alerts[o["finding"]] += 1
            text = (f"ALERT  {o['severity']:<8} {o['finding']:<24} "
                    f"{o['merchant_id']}/{o['terminal_id']:<8} "
                    f"{money(o['amount'], o['currency'])}  {o['txn_ids'][0]:<18} "
                    f"{'[shadow] ' if o['mode'] == 'shadow' else ''}{o['reason']}")
        else:
            refunds[o["reason"]] += 1
            refunded[o["currency"]] += o["amount"]
            text = (f"REFUND {'':<8} {o['reason']:<24} "
                    f"{o['merchant_id']}/{o['terminal_id']:<8} "
                    f"{money(o['amount'], o['currency'])}  {o['txn_id']:<18} "
                    f"{o['refund_id']} to card {o['card_token']}")
        if shown < limit:
            print(text)
            shown += 1
        elif shown == limit:
            print("  ...")
            shown += 1
    print()
    print("totals")
    for k, v in sorted(alerts.items()):
        print(f"  alerts  {k:<26} {v:>8}")
    for k, v in sorted(refunds.items()):
        print(f"  refunds {k:<26} {v:>8}")
    for cur, amt in sorted(refunded.items()):
        print(f"  refunded {money(amt, cur)}")


if __name__ == "__main__":
    main()
