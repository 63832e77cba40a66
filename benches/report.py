#!/usr/bin/env python3
"""Turns benches/throughput.sh's results.tsv into target/bench-report.md and a chart.

usage: report.py RESULTS.tsv REPORT.md CHART.png DURATION REQUESTS CLIENTS BIG_REQUESTS BIG_RUNS

A row measured more than once (the 100 KB rows: BIG_RUNS interleaved runs) shows
the median rps and its range; its ratios are the median of the per-run ratios
(run i of a row against run i of the baseline, measured next to each other).
"""
import datetime
import os
import platform
import sys


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}"


def main():
    results, report, chart, duration, requests, clients, big_requests, big_runs = sys.argv[1:9]
    runs = {}  # (suite, name) -> {metric: [value of each run]}
    order = []
    notes = {}  # (suite, name) -> [distinct notes]
    with open(results) as f:
        for line in f:
            suite, name, metric, value, note = line.rstrip("\n").split("\t")
            key = (suite, name)
            if key not in runs:
                runs[key] = {}
                order.append(key)
            if metric != "-":
                runs[key].setdefault(metric, []).append(float(value))
            if note and note not in notes.setdefault(key, []):
                notes[key].append(note)
    notes = {key: "; ".join(n) for key, n in notes.items()}

    def median(values):
        v = sorted(values)
        n = len(v)
        return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2

    # Rates are medians over runs; request and error counts add up.
    rows = {
        key: {m: sum(v) if m in ("REQ", "ERR") else median(v) for m, v in metrics.items()}
        for key, metrics in runs.items()
    }

    def ratio(a, b):
        if not (a and b):
            return "–"
        r = a / b
        return f"{r:.2f}×" if r >= 0.1 else f"{r:.3f}×" if r >= 0.01 else f"{r:.4f}×"

    def rps(v):
        # hvt rows here run at tens of rps: those keep their digits.
        return "–" if not v else f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# Throughput, one run ({now})",
        "",
        f"Machine: {machine()}. kv: `redis-benchmark -t set,get -c {clients} -n {requests}`; "
        f"http: `wrk -t 2 -c {clients} -d {duration}s`. Clients run in the same private network "
        "namespace; native servers on its loopback, guests behind a tap on a bridge. Ratios are "
        "within this run only (absolute numbers drift ±15% between runs here).",
        "",
    ]
    if any(k[0] in ("kv", "http") for k in order):
        out += [
            "Targets: kv spt and http spt ≥ 0.90× their native baseline (the same protocol code on the kernel's TCP "
            "stack).",
        ]
    # ONLY= runs some suites: tables of the others are left out.
    if any(k[0] == "kv" for k in order):
        out += [
            "",
            "| kv | SET rps | GET rps | SET × native-kv | GET × native-kv | GET × redis-server | note |",
            "|---|---|---|---|---|---|---|",
        ]
    native_kv = rows.get(("kv", "native-kv"), {})
    redis = rows.get(("kv", "redis-server"), {})
    for key in order:
        if key[0] != "kv":
            continue
        r = rows[key]
        note = notes.get(key, "")
        if not r:
            out.append(f"| {key[1]} | – | – | – | – | – | skipped: {note} |")
            continue
        out.append(
            f"| {key[1]} | {rps(r.get('SET'))} | {rps(r.get('GET'))} | {ratio(r.get('SET'), native_kv.get('SET'))} "
            f"| {ratio(r.get('GET'), native_kv.get('GET'))} | {ratio(r.get('GET'), redis.get('GET'))} | {note} |"
        )
    if any(k[0] == "http" for k in order):
        out += ["", "| http | GET rps | × native-http | note |", "|---|---|---|---|"]
    native_http = rows.get(("http", "native-http"), {})
    for key in order:
        if key[0] != "http":
            continue
        r = rows[key]
        note = notes.get(key, "")
        if not r:
            out.append(f"| {key[1]} | – | – | skipped: {note} |")
            continue
        out.append(f"| {key[1]} | {rps(r.get('GET'))} | {ratio(r.get('GET'), native_http.get('GET'))} | {note} |")

    def errors(r):
        return "–" if r.get("ERR") is None else f"{r['ERR']:.0f}"

    scale = {
        "http-c1000": f"http, 1,000 clients: `wrk -t 2 -c 1000 -d {duration}s`",
        "http-close": f'http, connection-per-request: `wrk -t 2 -c {clients} -d {duration}s -H "Connection: close"`',
    }
    if any(k[0] in scale or k[0] == "kv-100k" for k in order):
        out += [
            "",
            "Scale targets: 100 KB-value rps ≥ 0.8× redis-server, connection-per-request rps ≥ 0.8× native-http.",
        ]
    for suite, title in scale.items():
        if not any(k[0] == suite for k in order):
            continue
        base = rows.get((suite, "native-http"), {})
        out += ["", f"| {title} | rps | × native-http | requests | errors | note |", "|---|---|---|---|---|---|"]
        for key in order:
            if key[0] != suite:
                continue
            r = rows[key]
            note = notes.get(key, "")
            if not r:
                out.append(f"| {key[1]} | – | – | – | – | skipped: {note} |")
                continue
            reqs = f"{r['REQ']:.0f}" if r.get("REQ") else "–"
            out.append(
                f"| {key[1]} | {rps(r.get('GET'))} | {ratio(r.get('GET'), base.get('GET'))} | {reqs} "
                f"| {errors(r)} | {note} |"
            )
    if any(k[0] == "kv-100k" for k in order):
        base = runs.get(("kv-100k", "redis-server"), {})

        def spread(values):
            # median (min–max) of the runs
            if not values:
                return "–"
            if len(values) == 1:
                return rps(values[0])
            return f"{rps(median(values))} ({rps(min(values))}–{rps(max(values))})"

        def run_ratio(values, base_values):
            # median of run i / baseline run i, over the runs both have
            pairs = [a / b for a, b in zip(values or [], base_values or []) if a and b]
            return ratio(median(pairs), 1) if pairs else "–"

        out += [
            "",
            f"kv, 100 KB values: `redis-benchmark -t set,get -n {big_requests} -c 10 -d 102400`, {big_runs} runs "
            "of every row, interleaved (row by row, then again): rps as median (min–max), ratios as the median "
            "of each run's ratio to the redis-server run just before it.",
            "",
            "| kv, 100 KB values | runs | SET rps | GET rps | SET × redis-server | GET × redis-server | errors | note |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key in order:
            if key[0] != "kv-100k":
                continue
            r = runs[key]
            note = notes.get(key, "")
            if not r:
                out.append(f"| {key[1]} | 0 | – | – | – | – | – | skipped: {note} |")
                continue
            out.append(
                f"| {key[1]} | {len(r.get('SET', []))} | {spread(r.get('SET'))} | {spread(r.get('GET'))} "
                f"| {run_ratio(r.get('SET'), base.get('SET'))} | {run_ratio(r.get('GET'), base.get('GET'))} "
                f"| {errors(rows[key])} | {note} |"
            )

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        bars = []
        for key in order:
            for metric, v in rows[key].items():
                if metric in ("REQ", "ERR"):
                    continue
                bars.append((f"{key[1]}\n{key[0]} {metric}", v, key[0]))
        fig, ax = plt.subplots(figsize=(max(8, len(bars) * 0.9), 5))
        colors = {"kv": "#4c72b0", "http": "#dd8452", "http-c1000": "#c44e52", "http-close": "#8172b3",
                  "kv-100k": "#55a868"}
        xs = range(len(bars))
        ax.bar(xs, [b[1] / 1000 for b in bars], color=[colors[b[2]] for b in bars])
        ax.set_xticks(list(xs))
        ax.set_xticklabels([b[0] for b in bars], fontsize=7)
        ax.set_ylabel("thousand requests per second")
        ax.set_title(f"kv (redis-benchmark) and http (wrk), {clients} clients unless the suite says — {now}")
        for x, b in zip(xs, bars):
            ax.text(x, b[1] / 1000, f"{b[1] / 1000:.0f}k", ha="center", va="bottom", fontsize=7)
        fig.tight_layout()
        fig.savefig(chart, dpi=110)
        out += ["", f"![throughput chart]({os.path.basename(chart)})"]
    except Exception as e:  # no matplotlib: the table is the report
        out += ["", f"(no chart: {e})"]
    with open(report, "w") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
