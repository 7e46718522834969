#!/usr/bin/env python3
# The table and pictures of `make bench` from bench/bench.sh's measurements:
#   bench_report.py OUT_DIR [--quick] [--figs "N..."]
# reads OUT_DIR/raw.txt (one KEY=VALUE line per run) and OUT_DIR/trace.*.txt
# (the tls_device_rekey_* tracepoints of the figure 2/3 runs), prints one
# table, writes OUT_DIR/results.json and draws OUT_DIR/fig*.png (gnuplot).
# Each figure is a ratio or count against its reference of the same run:
# the median over the repetitions (each a pair of runs side by side) or over
# the key updates, with its 95% confidence interval. A target is judged only
# when that interval lies on one side of it: met, NOT MET, or inconclusive.
# Absolute times are printed, never judged.
# With --quick (the `bench` suite of make test) the figures are checked for
# completeness and the device counts for exactness, as TAP.
import json
import math
import os
import re
import subprocess
import statistics
import sys

out = sys.argv[1]
quick = "--quick" in sys.argv[2:]
# the figures measured (bench.sh --figs): the others are left out of the table
shown = {int(f) for f in sys.argv[sys.argv.index("--figs") + 1].split()} \
    if "--figs" in sys.argv else set(range(1, 10))

runs = []
for line in open(out + "/raw.txt"):
    runs.append(dict(kv.split("=", 1) for kv in line.split()))


def num(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def note(fig, why):
    print("# %s: %s" % (fig, why))
    notes.setdefault(fig, []).append(why)


notes = {}  # figure -> why it is incomplete, for the --quick TAP
try:
    for line in open(out + "/failed.txt"):
        fig = re.match(r"fig=(\d+)", line)
        note("fig" + fig.group(1) if fig else "all", "failed: " + line.strip())
except FileNotFoundError:
    pass

runs = [{k: num(v) if k not in ("case", "device") else v for k, v in r.items()} for r in runs]


def pick(fig, **match):
    return [r for r in runs if r["fig"] == fig and all(r.get(k) == v for k, v in match.items())]


def med(xs):
    return statistics.median(xs) if xs else None


def spread(xs):
    return [min(xs), max(xs)] if xs else None


def median_ci(xs, level=0.95):
    """The distribution-free confidence interval of the median: order
    statistics x(k) and x(n+1-k), k the largest whose coverage (each sample
    is below the median with probability 1/2) is at least @level. None
    below 6 samples, where even [min, max] covers less."""
    xs, n = sorted(xs), len(xs)
    k, tail = 0, 0.0
    for j in range(n // 2):
        tail += math.comb(n, j) / 2**n
        if 2 * tail > 1 - level:
            break
        k = j + 1
    return [xs[k - 1], xs[n - k]] if k else None


def by_rep(fig_a, case_a, fig_b, case_b, value):
    """Per-repetition ratios b/a of @value (a key, or a function of a run),
    the two runs of each pair made side by side."""
    get = value if callable(value) else (lambda r: r[value])
    a = {r["rep"]: get(r) for r in pick(fig_a, case=case_a)}
    b = {r["rep"]: get(r) for r in pick(fig_b, case=case_b)}
    return [b[i] / a[i] for i in sorted(a) if i in b and a[i]]


def cpu_per_gib(r):
    return r["cpu_s"] / (r["bytes"] / 2**30)


def judge(target, ci):
    """met when the whole interval is on the target's side, NOT MET when it
    is all on the other, else inconclusive (so is a figure without one)"""
    if ci is None:
        return "inconclusive"
    op, bound = target.split()
    good, bad = (ci[0] >= float(bound), ci[1] < float(bound)) if op == ">=" else \
        (ci[1] <= float(bound), ci[0] > float(bound))
    return "met" if good else "NOT MET" if bad else "inconclusive"


figures = {}
rows = []  # (figure, what, median, interval, n, target, verdict)


def row(fig, what, xs=None, target=None, exact=None, m=None):
    """One line of the table: the median of samples @xs and its interval,
    @target judged on it; or an exact count (@exact: it holds or not) or a
    derived value @m, not judged."""
    ci = median_ci(xs) if xs else None
    if xs:
        m = med(xs)
    verdict = None
    if exact is not None:
        verdict = "met" if exact else "NOT MET"
    elif target and target.split()[0] in (">=", "<="):
        verdict = judge(target, ci)
    rows.append((fig, what, m, ci, len(xs) if xs else None, target, verdict))
    return {"median": m, "ci95": ci, "n": len(xs) if xs else None,
            "spread": spread(xs) if xs else None, "target": target, "verdict": verdict}


# 1: per-ACK overhead
f1 = {}
for case in ("none", "observe", "chosen", "pending"):
    rs = pick(1, case=case)
    f1[case] = {"mibps": med([r["mibps"] for r in rs]),
                "mibps_spread": spread([r["mibps"] for r in rs]),
                "cpu_s_per_gib": med([cpu_per_gib(r) for r in rs]),
                "hw_share": med([r["hw_records"] / r["records"] for r in rs])}
f1["observe_vs_none"] = {
    "throughput": row(1, "throughput observe/none", by_rep(1, "none", 1, "observe", "mibps"),
                      ">= 0.98"),
    "cpu_per_byte": row(1, "  CPU per byte observe/none",
                        by_rep(1, "none", 1, "observe", cpu_per_gib))}
f1["chosen_vs_none"] = {
    "throughput": row(1, "throughput observe chosen by the socket/none",
                      by_rep(1, "none", 1, "chosen", "mibps"), ">= 0.98"),
    "cpu_per_byte": row(1, "  CPU per byte observe chosen by the socket/none",
                        by_rep(1, "none", 1, "chosen", cpu_per_gib))}
f1["pending_vs_none"] = {
    "throughput": row(1, "throughput update every 256K/none",
                      by_rep(1, "none", 1, "pending", "mibps")),
    "cpu_per_byte": row(1, "  CPU per byte update every 256K/none",
                        by_rep(1, "none", 1, "pending", cpu_per_gib))}
row(1, "  records the device sealed, update every 256K",
    [r["hw_records"] / r["records"] for r in pick(1, case="pending")])
figures["1_per_ack_overhead"] = f1

# 2 and 3: the SW windows, from the tracepoints
ev = re.compile(r"\s(\d+\.\d+): tls_device_rekey_(\w+): sk=(\S+) (.*)")
f2, all_ratios, all_delays, unpaced, immediate = [], [], [], [], 0
delay_sends, send_ms, points2 = [], [], []  # points2: (run, floor, SW bytes)
for r in pick(2):
    path = "%s/trace.rtt%d.%s.txt" % (out, r["rtt_ms"], "sndbuf%d.paced" % r["sndbuf"]
                                      if r["paced"] else "unpaced")
    # the floor of each window: what was in flight, or one round trip
    # (TCP's srtt at the update) of the application's data if more, at the
    # rate it sent (the pace, or less when it could not keep it)
    rate = (min(r["pace_mibps"], r["mibps"]) if r["paced"] else r["mibps"]) * 2**20 / 1e6
    rtts = [int(x) for x in str(r["srtt_us"]).split(",")]
    starts, retired, ratios, raw, delays, sends = {}, {}, [], [], [], {}
    retired_bytes, after_retire = {}, []
    updates = 0
    label = "RTT %d ms, sndbuf %dK" % (r["rtt_ms"], r["sndbuf"] >> 10) if r["paced"] else None
    for line in open(path):
        if "tracing_mark_write: send" in line:
            for sk in retired:
                sends[sk] += 1
            continue
        m = ev.search(line)
        if not m:
            continue
        t, kind, sk = float(m.group(1)), m.group(2), m.group(3)
        f = dict(kv.split("=") for kv in m.group(4).split())
        if kind == "start" and f["direction"] == "1":  # TX
            starts[sk] = (int(f["old_unacked"]), rtts[min(updates, len(rtts) - 1)])
            updates += 1
        elif kind == "retire":
            retired[sk] = t
            retired_bytes[sk] = int(f["sw_bytes"])
            sends[sk] = 0
        elif kind == "reinstall" and f["direction"] == "1" and sk in starts:
            inflight, srtt = starts.pop(sk)
            if inflight == 0:
                immediate += 1
                continue
            floor = max(inflight, rate * srtt)
            ratios.append(int(f["sw_bytes"]) / floor)
            raw.append(int(f["sw_bytes"]) / inflight)
            if label:
                points2.append((label, floor, int(f["sw_bytes"])))
            # what the mechanism added: bytes sent in SW after the ACK of
            # the old key's last byte
            if sk in retired_bytes:
                after_retire.append(int(f["sw_bytes"]) - retired_bytes.pop(sk))
            if sk in retired and r["paced"]:
                delays.append((t - retired.pop(sk)) * 1e3)
                delay_sends.append(sends.pop(sk))
    f2.append({"rtt_ms": r["rtt_ms"], "sndbuf": r["sndbuf"], "paced": r["paced"],
               "updates": len(ratios),
               "sw_over_floor": med(ratios), "spread": spread(ratios),
               "sw_over_inflight": med(raw), "raw_spread": spread(raw),
               "srtt_us": med(rtts),
               "inflight_mean_b": r["outq_sum"] / max(r["points"], 1),
               "reinstall_delay_ms": med(delays), "mibps": r["mibps"],
               "sw_bytes_after_retire": med(after_retire),
               "pace_skips": r["pace_skips"], "pace_skipped_s": r["pace_skipped_s"]})
    send_ms.append(r["send_us"] / 1e3)
    if not r["paced"]:
        unpaced += ratios
        row(2, "  unpaced, RTT %d ms (SW path faster than the simulated device)"
            % r["rtt_ms"], ratios)
        continue
    all_ratios += ratios
    all_delays += delays
    row(2, "SW bytes / floor, RTT %d ms (srtt %.1f ms), sndbuf %d K" % (
        r["rtt_ms"], med(rtts) / 1e3, r["sndbuf"] >> 10), ratios)
    row(2, "  SW bytes after the old key retired (%.2f MiB/s, %d sends late)" % (
        r["mibps"], r["pace_skips"]), after_retire)
figures["2_sw_window"] = {"runs": f2, "unpaced_median": med(unpaced),
                          "floor": "max(bytes in flight, sending rate x srtt)",
                          "installed_at_once": immediate,
                          "all_paced": row(2, "SW bytes / floor, all %d paced updates"
                                           % len(all_ratios), all_ratios, "<= 1.2")}
# the device gets the key at the first send after a grace period from the
# retirement (12 ms here: 3 ticks at HZ=250); the sends before it go in SW
figures["3_reinstall_delay"] = {
    "ms": row(3, "retire -> device key in ms (a grace period and a send interval, %.1f ms)"
              % (med(send_ms) or 0), all_delays, "<= 20"),
    "sends": row(3, "  send() calls started meanwhile (the last one to the device)",
                 delay_sends)}

# 4: a key update every MiB
figures["4_update_every_mib"] = {
    "throughput": row(4, "throughput update every MiB / none",
                      by_rep(1, "none", 4, "every_mib", "mibps"), ">= 0.9"),
    "cpu_per_byte": row(4, "  CPU per byte update every MiB / none",
                        by_rep(1, "none", 4, "every_mib", cpu_per_gib)),
    "hw_share": med([r["hw_records"] / r["records"] for r in pick(4)]),
    "mibps": med([r["mibps"] for r in pick(4)])}

# 5: setsockopt(TLS_TX) and setsockopt(TLS_RX) latency
f5 = {}
for r in pick(5):
    if r["offloaded"] != (r["device"] == "on"):
        note("fig5", "%s with TLS offload %s, but the socket was%s offloaded" % (
            r["case"], r["device"], "" if r["offloaded"] else " not"))
fig5_cases = {"idle": "TX, nothing in flight", "busy": "TX, record in flight",
              "rx_idle": "RX, nothing queued", "rx_busy": "RX, a record queued"}
samples5 = {}  # (case, device) -> every call's time in us, for the picture
for case in fig5_cases:
    ratios, pooled = [], {"on": [], "off": []}
    hws = {r["rep"]: r for r in pick(5, case=case, offloaded=1, device="on")}
    sws = {r["rep"]: r for r in pick(5, case=case, offloaded=0, device="off")}
    for rep in sorted(set(hws) & set(sws)):
        hw, sw = hws[rep], sws[rep]
        pooled["on"] += [float(x) for x in str(hw["samples_us"]).split(",")]
        pooled["off"] += [float(x) for x in str(sw["samples_us"]).split(",")]
        if not sw["median_us"] or not sw["p10_us"]:
            note("fig5", "the SW latency measured 0 us: the clock is too coarse")
            continue
        ratios.append(hw["median_us"] / sw["median_us"])
    if not ratios:
        note("fig5", "%s: no pair of runs offloaded and in SW" % case)
        continue
    samples5.update({(case, dev): xs for dev, xs in pooled.items()})
    swrec = [r["sw_records_median"] for r in hws.values() if "sw_records_median" in r]
    f5[case] = row(5, "setsockopt %s: %.0f / %.0f us%s" % (
        fig5_cases[case], med(pooled["on"]), med(pooled["off"]),
        ", %d SW records" % med(swrec) if swrec else ""), ratios, "<= 2")
    f5[case].update({"offloaded_us": med(pooled["on"]), "sw_us": med(pooled["off"]),
                     "offloaded_p10_p90": [sorted(pooled["on"])[len(pooled["on"]) // 10],
                                           sorted(pooled["on"])[len(pooled["on"]) * 9 // 10]],
                     "calls": len(pooled["on"])})
    if swrec:
        f5[case]["sw_records_median"] = med(swrec)
figures["5_setsockopt_latency"] = f5

# 6: scale (ACKs late: every update pending at once)
f6 = []
base = pick(6, conns=1, case=None)
for r in sorted(pick(6), key=lambda r: (r["conns"], r.get("case") or "")):
    per_ack = r["cpu_per_ack_us"] / base[0]["cpu_per_ack_us"] if base else None
    per_mib = r["cpu_per_mib_ms"] / base[0]["cpu_per_mib_ms"] if base else None
    f6.append({"conns": r["conns"], "policies": r.get("case") or "none", "setsockopt_s": r["setsockopt_s"], "acked_s": r["acked_s"],
               "back_in_hw_s": r["back_in_hw_s"], "sends_each": r["rounds"],
               "pending_at_once": r["in_window"], "slab_per_update_b": r["slab_per_update_b"],
               "slab_left_per_conn_b": r["slab_after_b"], "cpu_per_ack_us": r["cpu_per_ack_us"],
               "cpu_per_ack_vs_1": per_ack, "cpu_per_mib_ms": r["cpu_per_mib_ms"],
               "cpu_per_mib_vs_1": per_mib, "left_in_sw": r["in_window_after"]})
    # CPU per byte is there for reference: the same 16 MiB spread over
    # more connections costs more per byte (more, smaller segments)
    row(6, "%d conns%s (%d pending): all in HW %.2f s after the ACKs, %.0f B/update;"
        " CPU/byte %.2f" % (r["conns"], ", policies mixed" if r.get("case") else "",
                            r["in_window"], r["back_in_hw_s"] - r["acked_s"],
                            r["slab_per_update_b"], per_mib or 0),
        m=per_ack, target="CPU/ACK vs 1 conn ~1")
figures["6_scale"] = f6

# 7: device work per key update: per SW window (TlsTx/RxRekeyDeviceSw),
# however many keys arrived in it. A window still open when the stream
# ended has no reinstall to count: on TX the ones TlsCurrRekeyWindow shows
# (no send after the old key retired); on RX (the reader did not get past
# the old key's records in time) at most the run's last one, so a run with
# more RX windows than adds by one counts one window fewer, and more than
# one missing add stays a failure
f7 = {}
for name, rs in (("one_key", pick(4)), ("three_keys", pick(7))):
    if not rs:
        continue
    tot = {k: sum(r[k] for r in rs) for k in ("tx_adds", "tx_dels", "tx_windows", "rx_adds",
                                             "rx_dels", "rx_windows", "rekeys", "points",
                                             "tx_open_at_end")}
    tot["tx_windows"] -= tot["tx_open_at_end"]
    tot["rx_windows"] -= sum(1 for r in rs if r["rx_windows"] - r["rx_adds"] == 1)
    f7[name] = {"tx_adds_per_window": tot["tx_adds"] / tot["tx_windows"],
                "tx_dels_per_window": tot["tx_dels"] / tot["tx_windows"],
                "rx_adds_per_window": tot["rx_adds"] / tot["rx_windows"],
                # RX deletes the old context at the update, also in a window
                # still open at the end
                "rx_dels_per_window": tot["rx_dels"] / sum(r["rx_windows"] for r in rs),
                "tx_windows": tot["tx_windows"], "rx_windows": tot["rx_windows"],
                "tx_open_at_end": tot["tx_open_at_end"],
                "key_updates": tot["rekeys"], "update_points": tot["points"]}
    v = f7[name]
    exact = all(v[k] == 1 for k in v if k.endswith("per_window"))
    row(7, "%s: %d updates; TX %d windows: add/del %.2f/%.2f; RX %d: %.2f/%.2f" % (
        name.replace("_", " "), tot["rekeys"], tot["tx_windows"], v["tx_adds_per_window"],
        v["tx_dels_per_window"], tot["rx_windows"], v["rx_adds_per_window"],
        v["rx_dels_per_window"]), target="exactly 1", exact=exact)
figures["7_device_work"] = f7

# 8: a socket kept in SW against a SW socket
thr8 = by_rep(8, "sw", 8, "stay_sw", "mibps")
# one SW window (the first update), no key taken by the device
if not all(r["tx_adds"] == 0 and r["tx_windows"] == 1 for r in pick(8, case="stay_sw")):
    note("fig8", "the device took a key it was to refuse, or the socket left SW")
    thr8 = []
figures["8_stay_sw"] = {
    "throughput": row(8, "throughput kept in SW / SW socket", thr8, ">= 0.9"),
    "cpu_per_byte": row(8, "  CPU per byte kept in SW / SW socket",
                        by_rep(8, "sw", 8, "stay_sw", cpu_per_gib) if thr8 else [])}

def fmt(x):
    return "-" if x is None else "%.3g" % x


# 9: a KeyUpdate flood, offloaded against SW; an unrelated socket's
# install time with and without it
BUDGET = 5000   # TLS_REKEY_DEVICE_BUDGET: key installs per device and second
flood_dev = pick(9, case="device")
if flood_dev and not all(r["tx_storms"] >= 1 and r["rx_storms"] >= 1 for r in flood_dev):
    note("fig9", "a flood run whose directions did not go into their storm")
updates_s = med([r["updates_per_s"] for r in flood_dev])
for r in pick(9, case="latency_quiet") + pick(9, case="latency_flood"):
    if "lat_median_us" not in r:
        note("fig9", "an install latency run without a sample (rep %d)" % r["rep"])
        r["lat_median_us"] = None
lat_q = med([r["lat_median_us"] for r in pick(9, case="latency_quiet") if r["lat_median_us"]])
lat_f = med([r["lat_median_us"] for r in pick(9, case="latency_flood") if r["lat_median_us"]])
thr9 = by_rep(9, "sw", 9, "device", "mibps")
f9 = {
    "throughput": row(9, "flood (%s updates/s): b's throughput offloaded/SW" % fmt(updates_s),
                      thr9, ">= 0.9"),
    "cpu_per_update": row(9, "  CPU per key update offloaded/SW",
                          by_rep(9, "sw", 9, "device", "cpu_per_update_us"), "<= 1.5"),
    "adds_per_s": row(9, "  device installs per second (both devices, most of any run), budget %d"
                      % BUDGET, m=max([r["adds_per_s"] for r in flood_dev], default=None),
                      target="<= %d" % BUDGET,
                      exact=bool(flood_dev) and
                      all(r["a_adds"] / r["secs"] <= BUDGET and r["b_adds"] / r["secs"] <= BUDGET
                          for r in flood_dev)),
    "calls_per_s": row(9, "  device adds + dels per second, median",
                       m=med([r["calls_per_s"] for r in flood_dev])),
    "install_latency": row(9, "unrelated socket's install: flood/none (%s / %s us)" % (
        fmt(lat_f), fmt(lat_q)), [x for x in by_rep(9, "latency_quiet", 9, "latency_flood",
                            lambda r: r["lat_median_us"] or 0) if x],
        "<= 2"),
}
figures["9_flood"] = f9

json.dump({"figures": figures, "runs": runs}, open(out + "/results.json", "w"), indent=1)



print("\n%-3s %-66s %7s %17s %4s  %s" % ("fig", "measurement", "median", "95% CI", "n",
                                         "target: verdict"))
for fig, what, m, ci, n, target, verdict in (r for r in rows if r[0] in shown):
    ci_s = "[%s, %s]" % (fmt(ci[0]), fmt(ci[1])) if ci else ""
    judged = "" if target is None else target + ("" if verdict is None else ": " + verdict)
    print("%-3d %-66s %7s %17s %4s  %s" % (fig, what, fmt(m), ci_s, n or "", judged))
print("# the interval: distribution-free, of the median; a target is met or NOT MET"
      " only when the whole interval is on one side of it")



def draw():
    """build/bench/fig2.png, fig5.png, fig6.png with gnuplot, for the
    figures measured in this run; their data in OUT_DIR/plot/"""
    d = out + "/plot"
    os.makedirs(d, exist_ok=True)
    gp = ["set terminal png size 1200,600 noenhanced", "set key top left", "set grid"]
    if points2:
        labels = sorted({p[0] for p in points2}, key=lambda x: [int(t) for t in re.findall(r"\d+", x)])
        plots = []
        for i, label in enumerate(labels):
            with open("%s/fig2-%d.dat" % (d, i), "w") as f:
                f.writelines("%.1f %.1f\n" % (fl / 1024, sw / 1024)
                             for lab, fl, sw in points2 if lab == label)
            plots.append('"%s/fig2-%d.dat" using 1:2 with points pt %d ps 1.5 title "%s"'
                         % (d, i, i + 4, label))
        gp += ['set output "%s/fig2.png"' % out,
               'set title "Figure 2: SW bytes of each paced TX key update against its floor"',
               'set xlabel "floor: max(bytes in flight, sending rate x srtt) (KiB)"',
               'set ylabel "sent in SW (KiB)"', "set logscale xy",
               "plot " + ", ".join(plots + ['x with lines dt 2 lc "black" title "floor"',
                                            '1.2*x with lines lc "red" title "target: 1.2 x floor"']),
               "unset logscale", "unset title"]
    if samples5:
        gp += ['set output "%s/fig5.png"' % out,
               'set multiplot layout 2,2 title "Figure 5: setsockopt latency,'
               ' offloaded socket vs SW socket (every call, %d repetitions side by side)"'
               % len({r["rep"] for r in pick(5)}),
               'set ylabel "fraction of calls"', 'set xlabel "us"', "set logscale x",
               "set key bottom right",
               "set yrange [0:1]"]
        for case, what in fig5_cases.items():
            if (case, "on") not in samples5:
                continue
            for dev in ("on", "off"):
                xs = sorted(samples5[(case, dev)])
                with open("%s/fig5-%s-%s.dat" % (d, case, dev), "w") as f:
                    f.writelines("%.1f %.4f\n" % (x, (i + 1) / len(xs)) for i, x in enumerate(xs))
            gp += ['set title "%s"' % what,
                   'plot "%s/fig5-%s-on.dat" using 1:2 with steps lw 2 title "offloaded",'
                   ' "%s/fig5-%s-off.dat" using 1:2 with steps lw 2 title "SW"' % (d, case, d, case)]
        gp += ["unset multiplot", "unset logscale", "set yrange [*:*]", "unset title",
               "unset ylabel", "set key top left"]
    if len(f6) > 1:
        with open(d + "/fig6.dat", "w") as f:
            f.writelines("%d %.3f %.0f %.3f %.3f\n" % (
                r["conns"], r["back_in_hw_s"] - r["acked_s"], r["slab_per_update_b"],
                r["cpu_per_mib_vs_1"] or 0, r["cpu_per_ack_vs_1"] or 0)
                for r in f6 if r["policies"] == "none")
        gp += ['set output "%s/fig6.png"' % out,
               'set multiplot layout 1,3 title "Figure 6: every connection updates its TX key'
               ' at once, data in flight"', "set logscale x", 'set xlabel "connections"',
               "set key off", "set logscale y",
               'set title "all back in the device, s after the ACKs"',
               'plot "%s/fig6.dat" using 1:2 with linespoints lw 2 pt 7' % d,
               "unset logscale y", "set yrange [0:*]",
               # one update's memory is below /proc/meminfo's resolution
               'set title "slab memory per pending update, bytes"',
               'plot "%s/fig6.dat" every ::1 using 1:3 with linespoints lw 2 pt 7' % d,
               'set title "CPU afterwards, vs 1 connection"', "set key bottom left",
               'plot "%s/fig6.dat" using 1:4 with linespoints lw 2 pt 7 title "per byte",'
               ' "" using 1:5 with linespoints lw 2 pt 6 title "per ACK"' % d,
               "unset multiplot"]
    if len(gp) > 3:
        subprocess.run(["gnuplot"], input="\n".join(gp) + "\n", text=True, check=True)


draw()

if quick:
    # every figure present and made of whole runs; device counts exact
    checks = [
        ("fig1", all(pick(1, case=c) for c in ("none", "observe", "chosen", "pending"))),
        ("fig2", len(all_ratios) > 0),
        ("fig3", len(delay_sends) > 0),
        ("fig4", bool(pick(4))),
        ("fig5", len(f5) == len(fig5_cases)),
        ("fig6", len(f6) >= 3 and any(r["policies"] == "mixed" for r in f6) and
         all(r["left_in_sw"] == 0 and r["pending_at_once"] == r["conns"] for r in f6)),
        ("fig7", bool(f7) and all(
            v[k] == 1 for v in f7.values() for k in v if k.endswith("per_window"))),
        ("fig8", bool(thr8)),
        ("fig9", bool(thr9) and f9["adds_per_s"]["verdict"] == "met" and
         "fig9" not in notes and bool(pick(9, case="latency_flood"))),
        ("every_byte_intact", all(r.get("intact", 1) == 1 for r in runs)),
    ]
    print("TAP version 13\n1..%d" % len(checks))
    for i, (name, ok) in enumerate(checks, 1):
        why = "" if ok or name not in notes else " # " + "; ".join(notes[name])
        print("%sok %d bench.%s%s" % ("" if ok else "not ", i, name, why))
    sys.exit(0 if all(ok for _, ok in checks) else 1)
