#!/usr/bin/env python3
"""dashboard_check.py - the live dashboard in headless Chromium (Debian's
chromium and chromium-driver, driven with python3-selenium).

  dashboard_check.py watch URL PAGE_UP OUT.json SHOT.png
      Open the page, wait for its event stream and first stats, touch
      PAGE_UP (the caller starts streaming records then), and watch rows
      arrive until they stop for 6 s (at least one alert first). Then try
      the filters, save a screenshot to SHOT.png and write what the page
      showed to OUT.json.
  dashboard_check.py compare OUT.json ACTUAL.jsonl RULES.yaml
      The page showed every committed alert and refund (by id) and nothing
      else, its totals equal the committed outputs, rows arrived while the
      stream ran (not all at once), the filters showed exactly the rows
      they should, cards only masked, and every rule of the file is listed.
"""
import json
import os
import re
import sys
import time

MASKED = re.compile(r"^\d{6}[*X]+\d{4}$")  # as the codec accepts them


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--window-size=1600,1000"):
        o.add_argument(a)
    o.binary_location = os.environ.get("PG_CHROMIUM", "/usr/bin/chromium")
    svc = Service(os.environ.get("PG_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=svc, options=o)


def rows(d):
    """Every kept row: [id, type, finding, merchant, card, visible]."""
    return d.execute_script("""
      return [...document.querySelectorAll('#stream tr.row')].map(tr => [
        tr.dataset.id, tr.dataset.type, tr.dataset.finding,
        tr.children[4].textContent, tr.children[7].textContent,
        tr.style.display !== 'none']);""")


def text(d, testid):
    return d.execute_script(
        f"return document.querySelector('[data-testid=\"{testid}\"]').textContent")


def watch(url, page_up, out, shot):
    from selenium.webdriver.support.ui import Select
    d = browser()
    try:
        d.get(url)
        t0 = time.time()
        while time.time() - t0 < 60:
            if (d.find_element("id", "conn").text == "live"
                    and d.execute_script("return document.querySelectorAll('#rules tr').length") > 0):
                break
            time.sleep(0.2)
        else:
            sys.exit("dashboard_check: the page never went live with stats")
        rows_at_start = len(rows(d))
        open(page_up, "w").close()
        timeline, last_change, n = [], time.time(), 0
        while time.time() - last_change < 6 or n == 0:
            if time.time() - t0 > 240:
                sys.exit(f"dashboard_check: gave up, timeline {timeline[-5:]}")
            k = len(rows(d))
            if k != n:
                n, last_change = k, time.time()
                timeline.append([round(time.time() - t0, 2), k])
            time.sleep(0.25)
        time.sleep(2)  # the stats event after the last commit
        seen = rows(d)
        res = {"rows_at_start": rows_at_start, "timeline": timeline,
               "rows": seen,
               "total_alerts": int(text(d, "total-alerts")),
               "total_refunds": int(text(d, "total-refunds")),
               "ready": text(d, "ready"),
               "rules_version": text(d, "rules-version"),
               "rules": d.execute_script(
                   "return [...document.querySelectorAll('#rules tr')].map(t => t.children[0].textContent)"),
               "page_text": d.find_element("tag name", "body").text,
               "filters": {}}
        # filters: each finding, one severity, one merchant
        sel = Select(d.find_element("id", "f-finding"))
        for opt in [o.get_attribute("value") for o in sel.options][1:]:
            sel.select_by_value(opt)
            res["filters"]["finding=" + opt] = [r[0] for r in rows(d) if r[5]]
        sel.select_by_value("")
        merchant = next((r[3] for r in seen if r[3]), "")
        box = d.find_element("id", "f-merchant")
        box.send_keys(merchant)
        res["filters"]["merchant=" + merchant] = [r[0] for r in rows(d) if r[5]]
        box.clear()
        box.send_keys(" ")  # an input event with an empty filter
        Select(d.find_element("id", "f-finding")).select_by_value("")
        d.save_screenshot(shot)
        json.dump(res, open(out, "w"), indent=1)
        print(f"dashboard_check: {len(seen)} rows after {len(timeline)} "
              f"changes; screenshot {shot}")
    finally:
        d.quit()


def compare(path, actual, rules_path):
    page = json.load(open(path))
    outs = [json.loads(line) for line in open(actual)]
    ids = {o.get("alert_id") if o["type"] == "alert" else o["refund_id"]: o
           for o in outs}
    bad = []

    def check(what, ok, detail=""):
        print(f"  {'ok ' if ok else 'BAD'} {what} {detail}")
        if not ok:
            bad.append(what)

    shown = [r[0] for r in page["rows"]]
    check("every committed output shown once", sorted(shown) == sorted(ids),
          f"(page {len(shown)}, committed {len(ids)})")
    n_alerts = sum(o["type"] == "alert" for o in outs)
    check("alerts total", page["total_alerts"] == n_alerts,
          f"(page {page['total_alerts']}, committed {n_alerts})")
    check("refunds total", page["total_refunds"] == len(outs) - n_alerts,
          f"(page {page['total_refunds']}, committed {len(outs) - n_alerts})")
    grew = [k for _, k in page["timeline"]]
    check("rows arrived live, in several steps",
          page["rows_at_start"] == 0 and len(grew) >= 3 and grew == sorted(grew),
          f"(timeline {page['timeline'][:6]}...)")
    check("ready badge", page["ready"] == "ready", f"({page['ready']!r})")
    # newest first: the page's order is the reverse of arrival, so the
    # first row is one of the last outputs committed
    for key, got in page["filters"].items():
        f, v = key.split("=", 1)
        if f == "finding":
            want = [i for i in shown
                    if (ids[i].get("finding") if ids[i]["type"] == "alert"
                        else "refund:" + ids[i]["reason"]) == v]
        else:
            want = [i for i in shown if v in ids[i]["merchant_id"]]
        check(f"filter {key}", got == want and len(got) > 0,
              f"({len(got)} rows)")
    cards = [r[4] for r in page["rows"] if r[4]]
    check("cards masked only", all(MASKED.match(c) for c in cards) and cards,
          f"({len(cards)} cards shown)")
    tokens = {o["card_token"] for o in outs if o.get("card_token")}
    check("no card token on the page",
          not any(t in page["page_text"] for t in tokens))
    import yaml
    rule_ids = [r["id"] for r in yaml.safe_load(open(rules_path))["rules"]]
    check("rule set listed", page["rules"] == rule_ids,
          f"({page['rules']} vs {rule_ids})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["watch"] and len(sys.argv) == 6:
        watch(*sys.argv[2:])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 5:
        compare(*sys.argv[2:])
    else:
        sys.exit(__doc__)
