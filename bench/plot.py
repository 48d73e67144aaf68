#!/usr/bin/env python3
"""Summarise a bench/run TSV: a Markdown table (median and min-max spread per
peer/workload/workers) and one SVG per workload (metric vs workers, one line
per peer). Standard library only; SVG written by hand.

    bench/plot.py bench/results/<machine>-<date>.tsv
writes <same base>.md and <same base>-<workload>.svg next to it.
"""
import collections
import html
import os
import statistics
import sys

PEER_ORDER = ["weft", "weft-eager", "weft-rp", "weft-epoll", "tokio-mt", "tokio-ct", "go", "asio", "asyncio", "uvloop", "openssl"]
COLORS = {"weft": "#d62728", "weft-eager": "#bcbd22", "weft-rp": "#ff9896", "weft-epoll": "#e377c2", "tokio-mt": "#1f77b4", "tokio-ct": "#17becf", "go": "#2ca02c",
          "asio": "#9467bd", "asyncio": "#ff7f0e", "uvloop": "#8c564b", "openssl": "#7f7f7f"}
WORKLOAD_ORDER = ["spawn_many", "yield_many", "ping_pong", "chained_spawn", "timers", "idle_memory",
                  "fanout", "mutex", "mpsc", "skynet", "fib", "cache_hit", "echo_64", "echo_1024",
                  "tls_echo_64", "tls_echo_16k", "tls_handshake"]
# What each plot shows: (metric key, axis label, higher is better)
PLOT_METRIC = {
    "timers": ("mean_late_us", "mean lateness (us, lower is better)", False),
    "idle_memory": ("bytes_per_task", "bytes per idle task (lower is better)", False),
}
UNITS = {"spawn_many": "spawns/s", "yield_many": "yields/s", "ping_pong": "round trips/s",
         "chained_spawn": "spawns/s", "timers": "timers/s", "idle_memory": "tasks/s",
         "fanout": "tasks/s (2M iterations each)", "mutex": "lock+unlock/s",
         "mpsc": "items/s", "skynet": "tasks/s", "fib": "tasks/s", "cache_hit": "tasks/s",
         "echo_64": "requests/s", "echo_1024": "requests/s",
         "tls_echo_64": "requests/s", "tls_echo_16k": "requests/s",
         "tls_handshake": "full handshakes/s"}
# peak_rss_mib is derived from the programs' peak_rss_kib (VmHWM at the end of
# the run; skynet, fib) when the TSV is loaded; it gets a second plot per workload.
EXTRA_KEYS = ["mean_late_us", "max_late_us", "bytes_per_task", "peak_rss_mib", "p50_us", "p99_us",
              "server_us_per_req", "server_cpu_ns_per_byte", "server_util", "load1"]
RSS_METRIC = ("peak_rss_mib", "peak RSS, MiB (lower is better)", False)
# Peers that are weft itself, and reference points that are no runtime (openssl:
# bare OpenSSL in one epoll thread, the floor of TLS's cost); "best peer" in the
# summary is the best of the others.
WEFT_PEERS = ("weft", "weft-eager", "weft-rp", "weft-epoll")
REFERENCE_PEERS = ("openssl",)


def order(seq, pref):
    return sorted(seq, key=lambda x: (pref.index(x) if x in pref else len(pref), x))


def load(path):
    header, rows = [], []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                header.append(line[1:].strip())
                continue
            if not line or line.startswith("peer\t"):
                continue
            peer, wl, workers, rep, secs, ops, extra = (line.split("\t") + [""] * 7)[:7]
            ex = {}
            for kv in extra.split():
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    try:
                        ex[k] = float(v)
                    except ValueError:
                        pass
            if "peak_rss_kib" in ex:
                ex["peak_rss_mib"] = ex["peak_rss_kib"] / 1024.0
            rows.append(dict(peer=peer, workload=wl, workers=int(workers), rep=int(rep),
                             seconds=float(secs), ops=float(ops), extra=ex))
    return header, rows


def fmt(x):
    if x is None:
        return "-"
    ax = abs(x)
    if ax >= 1e6:
        return "%.2fM" % (x / 1e6)
    if ax >= 1e4:
        return "%.1fk" % (x / 1e3)
    if ax >= 100:
        return "%.0f" % x
    if ax >= 1:
        return "%.2f" % x
    return "%.3g" % x


def summarise(rows):
    groups = collections.defaultdict(list)
    for r in rows:
        groups[(r["workload"], r["peer"], r["workers"])].append(r)
    out = {}
    for key, rs in groups.items():
        ops = [r["ops"] for r in rs]
        s = dict(n=len(rs), ops_med=statistics.median(ops), ops_min=min(ops), ops_max=max(ops),
                 secs_med=statistics.median(r["seconds"] for r in rs))
        for k in EXTRA_KEYS:
            vals = [r["extra"][k] for r in rs if k in r["extra"]]
            if vals:
                s[k] = statistics.median(vals)
                s[k + "_min"], s[k + "_max"] = min(vals), max(vals)
        out[key] = s
    return out


def markdown(header, summary, base):
    lines = ["# Side-by-side benchmark: " + os.path.basename(base), ""]
    lines += ["    " + h for h in header] + [""]
    lines.append("Median of the repetitions; spread is min-max. Peers were interleaved within each "
                 "repetition. Single-threaded peers (tokio-ct, asyncio, uvloop) run at the smallest "
                 "worker count only; Python counts are scaled down (see bench/README.md) and "
                 "reported per operation.")
    lines.append("")
    workloads = order({k[0] for k in summary}, WORKLOAD_ORDER)
    for wl in workloads:
        keys = [k for k in summary if k[0] == wl]
        extras = [k for k in EXTRA_KEYS if any(k in summary[x] for x in keys)]
        lines.append("## %s (%s)" % (wl, UNITS.get(wl, "ops/s")))
        lines.append("")
        lines.append("| peer | workers | median ops/s | spread (min-max) | median s | reps |"
                     + "".join(" %s |" % e for e in extras))
        lines.append("|---|---:|---:|---:|---:|---:|" + "---:|" * len(extras))
        for peer in order({k[1] for k in keys}, PEER_ORDER):
            for w in sorted(k[2] for k in keys if k[1] == peer):
                s = summary[(wl, peer, w)]
                row = "| %s | %d | %s | %s-%s | %s | %d |" % (
                    peer, w, fmt(s["ops_med"]), fmt(s["ops_min"]), fmt(s["ops_max"]),
                    fmt(s["secs_med"]), s["n"])
                for e in extras:
                    row += " %s |" % (("%s (%s-%s)" % (fmt(s[e]), fmt(s[e + "_min"]), fmt(s[e + "_max"])))
                                      if e in s else "-")
                lines.append(row)
        lines.append("")
        lines.append("![%s](%s-%s.svg)" % (wl, os.path.basename(base), wl))
        lines.append("")
        if "peak_rss_mib" in extras:
            lines.append("![%s peak RSS](%s-%s-rss.svg)" % (wl, os.path.basename(base), wl))
            lines.append("")
    return "\n".join(lines + summary_table(summary)) + "\n"


def summary_table(summary):
    """weft and weft-eager against the best other peer, per workload and worker
    count, on each plot's metric (throughput, or lateness / memory where lower
    is better); peak RSS beside it where the workload reports one."""
    lines = ["## Summary: weft vs the best other peer", "",
             "Medians; ratio = weft / best peer for throughput, best peer / weft where lower is "
             "better (so > 1 is weft ahead either way). Single-threaded peers count at the "
             "smallest worker count only.", "",
             "| workload | workers | metric | weft | weft-eager | best peer | weft / best | weft-eager / best | peak RSS MiB (weft / weft-eager / best) |",
             "|---|---:|---|---:|---:|---|---:|---:|---|"]

    def value(s, metric):
        if s is None:
            return None
        return s["ops_med"] if metric == "ops" else s.get(metric)

    for wl in order({k[0] for k in summary}, WORKLOAD_ORDER):
        metric, label, higher = PLOT_METRIC.get(wl, ("ops", UNITS.get(wl, "ops/s"), True))
        label = label.split(" (")[0]
        for w in sorted({k[2] for k in summary if k[0] == wl}):
            mine = {p: summary.get((wl, p, w)) for p in ("weft", "weft-eager")}
            others = [(k[1], value(s, metric)) for k, s in summary.items()
                      if k[0] == wl and k[2] == w and k[1] not in WEFT_PEERS + REFERENCE_PEERS
                      and value(s, metric) is not None]
            if all(v is None for v in mine.values()):
                continue
            best = (max if higher else min)(others, key=lambda pv: pv[1]) if others else None

            def ratio(s):
                v = value(s, metric)
                if v is None or best is None or not v or not best[1]:
                    return "-"
                return "%.2fx" % (v / best[1] if higher else best[1] / v)

            def rss(s):
                return fmt(s["peak_rss_mib"]) if s and "peak_rss_mib" in s else "-"
            rss_col = "-"
            if any(s and "peak_rss_mib" in s for s in mine.values()):
                best_rss = summary.get((wl, best[0], w)) if best else None
                rss_col = "%s / %s / %s" % (rss(mine["weft"]), rss(mine["weft-eager"]),
                                            (best[0] + " " + rss(best_rss)) if best else "-")
            lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
                wl, w, label, fmt(value(mine["weft"], metric)), fmt(value(mine["weft-eager"], metric)),
                ("%s %s" % (best[0], fmt(best[1]))) if best else "-",
                ratio(mine["weft"]), ratio(mine["weft-eager"]), rss_col))
    lines.append("")
    return lines


def svg_plot(wl, summary, title_note, metric_spec=None):
    metric, ylabel, _ = metric_spec or PLOT_METRIC.get(
        wl, ("ops", UNITS.get(wl, "ops/s") + " (higher is better)", True))
    keys = [k for k in summary if k[0] == wl]
    peers = order({k[1] for k in keys}, PEER_ORDER)
    workers = sorted({k[2] for k in keys})
    series = {}
    for p in peers:
        pts = []
        for w in workers:
            s = summary.get((wl, p, w))
            if not s:
                continue
            if metric == "ops":
                pts.append((w, s["ops_med"], s["ops_min"], s["ops_max"]))
            elif metric in s:
                pts.append((w, s[metric], s[metric + "_min"], s[metric + "_max"]))
        if pts:
            series[p] = pts
    W, H, L, R, T, B = 720, 420, 80, 150, 40, 50
    pw, ph = W - L - R, H - T - B
    ymax = max([pt[3] for pts in series.values() for pt in pts] + [1e-9]) * 1.1
    xs = {w: L + (pw * (i + 0.5) / len(workers)) for i, w in enumerate(workers)}

    def y(v):
        return T + ph - ph * v / ymax

    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="12">' % (W, H, W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>' % (L, html.escape(wl + title_note))]
    for i in range(6):  # grid and y ticks
        v = ymax * i / 5
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, y(v), L + pw, y(v)))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (L - 6, y(v) + 4, fmt(v)))
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>' % (L, T, pw, ph))
    for w, x in xs.items():
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (x, T + ph + 18, w))
    o.append('<text x="%.1f" y="%d" text-anchor="middle">workers</text>' % (L + pw / 2, H - 10))
    o.append('<text transform="translate(16,%.1f) rotate(-90)" text-anchor="middle">%s</text>'
             % (T + ph / 2, html.escape(ylabel)))
    for i, (p, pts) in enumerate(series.items()):
        c = COLORS.get(p, "#333")
        if len(pts) > 1:
            o.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                     % (c, " ".join("%.1f,%.1f" % (xs[w], y(m)) for w, m, _, _ in pts)))
        for w, m, lo, hi in pts:
            x = xs[w]
            o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>' % (x, y(lo), x, y(hi), c))
            o.append('<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s w=%d: %s</title></circle>'
                     % (x, y(m), c, p, w, fmt(m)))
        ly = T + 10 + i * 20
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>'
                 % (L + pw + 15, ly, L + pw + 40, ly, c))
        o.append('<text x="%d" y="%d">%s</text>' % (L + pw + 46, ly + 4, html.escape(p)))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    base = path[:-4] if path.endswith(".tsv") else path
    header, rows = load(path)
    if not rows:
        sys.exit("plot.py: no rows in " + path)
    summary = summarise(rows)
    with open(base + ".md", "w") as f:
        f.write(markdown(header, summary, base))
    for wl in {k[0] for k in summary}:
        with open("%s-%s.svg" % (base, wl), "w") as f:
            f.write(svg_plot(wl, summary, " (median, min-max bars)"))
        if any(k[0] == wl and "peak_rss_mib" in s for k, s in summary.items()):
            with open("%s-%s-rss.svg" % (base, wl), "w") as f:
                f.write(svg_plot(wl, summary, " peak RSS (median, min-max bars)", RSS_METRIC))


if __name__ == "__main__":
    main()
