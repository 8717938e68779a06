#!/usr/bin/env python3
"""report.py - turns gpu-check.sh's records (one JSON object per line: step, name, status and
free fields) into gpu-check.json, and prints the summary that ends gpu-check.log: counts per
step, the driver facts as a Markdown table ready for docs/SECURITY.md, the native/remoted
ratios, and every failure with what libvgpu logged about it.

Usage: report.py --records FILE --out FILE [--started T --finished T --seconds N]"""
import argparse
import json
import sys

STATUSES = ("pass", "fail", "error", "skip", "answer", "info", "value")


def load(path):
    recs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError as e:
                r = {"step": "report", "name": f"unparsable record {n}", "status": "error",
                     "detail": f"{e}: {line[:300]}"}
            r.setdefault("step", "?")
            r.setdefault("status", "info")
            recs.append(r)
    return recs


def bench_rows(recs):
    """Pairs native and remoted values of the same figure; slowdown > 1 means remoting costs."""
    vals = {}
    for r in recs:
        if r.get("status") == "value" and r.get("mode") in ("native", "remoted"):
            row = vals.setdefault(r["name"], {"name": r["name"], "unit": r.get("unit"),
                                              "better": r.get("better"),
                                              "detail": r.get("detail")})
            row[r["mode"]] = r.get("value")
    rows = []
    for row in vals.values():
        n, m = row.get("native"), row.get("remoted")
        if isinstance(n, (int, float)) and isinstance(m, (int, float)) and n > 0 and m > 0:
            row["ratio_remoted_over_native"] = round(m / n, 4)
            row["slowdown"] = round(n / m if row.get("better") == "higher" else m / n, 4)
        rows.append(row)
    return rows


def md_escape(s):
    return str(s).replace("|", "\\|")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--started", default="")
    ap.add_argument("--finished", default="")
    ap.add_argument("--seconds", type=int, default=0)
    a = ap.parse_args()

    recs = load(a.records)
    steps, by_step = {}, {}
    total = {s: 0 for s in STATUSES}
    for r in recs:
        steps.setdefault(r["step"], []).append(r)
        st = r["status"] if r["status"] in STATUSES else "info"
        total[st] += 1
        by_step.setdefault(r["step"], {s: 0 for s in STATUSES})[st] += 1
    machine = {r["name"]: {k: v for k, v in r.items() if k not in ("step", "name")}
               for r in steps.get("machine", [])}
    facts = {r["name"]: {k: v for k, v in r.items() if k not in ("step", "name", "mode")}
             for r in steps.get("driver_facts", [])}
    failures = [{k: v for k, v in r.items() if v not in ("", None)}
                for r in recs if r["status"] in ("fail", "error")]
    bench = bench_rows(recs)
    mode = machine.get("gpu", {}).get("mode", "?")
    manifest = next((r.get("value") for r in steps.get("build", []) if r["name"] == "manifest"), None)
    doc = {
        "version": 1,
        "started": a.started, "finished": a.finished, "seconds": a.seconds,
        "mode": mode,
        "machine": machine,
        "bundle": manifest,
        "summary": {**{s: total[s] for s in ("pass", "fail", "error", "skip")},
                    "by_step": {s: {k: v for k, v in c.items() if v}
                                for s, c in by_step.items()}},
        "driver_facts": facts,
        "bench": bench,
        "failures": failures,
        "steps": steps,
    }
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")

    p = print
    p("")
    p(f"== gpu-check report ({'CHAIN MODE: simulated GPU behind libvgpu' if mode == 'chain' else mode}),"
      f" {a.seconds} s")
    g = machine.get("gpu", {})
    p(f"device: {g.get('device')} cc {g.get('cc')}, driver {g.get('driver')} ({g.get('libcuda')})")
    p("")
    p("per step:    pass fail error skip")
    for s, c in by_step.items():
        p(f"  {s:<12}{c['pass']:>4}{c['fail']:>5}{c['error']:>6}{c['skip']:>5}")
    if facts:
        p("")
        p("driver facts (for docs/SECURITY.md):")
        p("| question | answer | details |")
        p("|---|---|---|")
        for name, f in facts.items():
            det = ", ".join(f"{k}={v}" for k, v in f.items() if k not in ("status", "answer"))
            p(f"| {md_escape(name)} | {md_escape(f.get('answer', f.get('status')))} | {md_escape(det)} |")
    if bench:
        p("")
        p("cost of isolation (remoted vs native, same run; slowdown > 1 = remoting is slower):")
        p(f"  {'figure':<36}{'native':>12}{'remoted':>12}  {'unit':<11}{'slowdown':>9}")
        for r in bench:
            def num(v):
                return f"{v:.4g}" if isinstance(v, (int, float)) else "-"
            p(f"  {r['name']:<36}{num(r.get('native')):>12}{num(r.get('remoted')):>12}  "
              f"{str(r.get('unit')):<11}{num(r.get('slowdown')):>9}")
    if failures:
        p("")
        p(f"failures ({len(failures)}):")
        for r in failures:
            extra = r.get("detail") or r.get("error") or r.get("result") or ""
            p(f"  [{r['step']}] {r.get('mode', '') + ' ' if r.get('mode') else ''}{r['name']}: "
              f"{str(extra)[:300]}")
            for k in ("call", "first_unsupported", "first_unknown_table", "first_failed_op",
                      "shim_log"):
                if r.get(k):
                    p(f"      {k}: {str(r[k])[:400]}")
    p("")
    p(f"gpu-check: {total['pass']} passed, {total['fail'] + total['error']} failed, "
      f"{total['skip']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
