#!/usr/bin/env python3
# The table of `make bench` from selftests/bench.sh's measurements:
#   bench_report.py OUT_DIR [--quick]
# reads OUT_DIR/raw.txt (one KEY=VALUE line per run) and OUT_DIR/trace.*.txt
# (the tls_device_rekey_* tracepoints of the figure 2/3 runs), prints one
# table and writes OUT_DIR/results.json. Each figure is a ratio or count
# against its reference of the same run: median over the repetitions (or
# key updates), spread as [min, max] (p10, p90 for latencies). Targets are
# printed with the figure; absolute times are printed, never judged.
# With --quick (the `bench` suite of make test) the figures are checked for
# completeness and the device counts for exactness, as TAP.
import json
import re
import statistics
import sys

out = sys.argv[1]
quick = "--quick" in sys.argv[2:]

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


def by_rep(fig_a, case_a, fig_b, case_b, key):
    """Per-repetition ratios b/a of @key, paired by repetition."""
    a = {r["rep"]: r[key] for r in pick(fig_a, case=case_a)}
    b = {r["rep"]: r[key] for r in pick(fig_b, case=case_b)}
    return [b[i] / a[i] for i in sorted(a) if i in b and a[i]]


def cpu_per_gib(r):
    return r["cpu_s"] / (r["bytes"] / 2**30)


figures = {}
rows = []  # (figure, what, median, spread, target, met)


def row(fig, what, m, sp, target=None, ok=None):
    rows.append((fig, what, m, sp, target, ok))


# 1: per-ACK overhead
f1 = {}
for case in ("none", "observe", "pending"):
    rs = pick(1, case=case)
    f1[case] = {"mibps": med([r["mibps"] for r in rs]),
                "mibps_spread": spread([r["mibps"] for r in rs]),
                "cpu_s_per_gib": med([cpu_per_gib(r) for r in rs]),
                "hw_share": med([r["hw_records"] / r["records"] for r in rs])}
for case in ("observe", "pending"):
    thr = by_rep(1, "none", 1, case, "mibps")
    cpu = [b / a for a, b in zip([cpu_per_gib(r) for r in pick(1, case="none")],
                                 [cpu_per_gib(r) for r in pick(1, case=case)])]
    f1[case + "_vs_none"] = {"throughput_ratio": med(thr), "throughput_spread": spread(thr),
                             "cpu_per_byte_ratio": med(cpu), "cpu_spread": spread(cpu)}
figures["1_per_ack_overhead"] = f1
o = f1["observe_vs_none"]
row(1, "throughput observe/none (b/a)", o["throughput_ratio"], o["throughput_spread"],
    ">= 0.98", o["throughput_ratio"] is not None and o["throughput_ratio"] >= 0.98)
row(1, "CPU per byte observe/none", o["cpu_per_byte_ratio"], o["cpu_spread"])
p = f1["pending_vs_none"]
row(1, "throughput update every 256K/none (c/a)", p["throughput_ratio"], p["throughput_spread"])
row(1, "CPU per byte update every 256K/none", p["cpu_per_byte_ratio"], p["cpu_spread"])
row(1, "records the device sealed, update every 256K", f1["pending"]["hw_share"], None)

# 2 and 3: the SW windows, from the tracepoints
ev = re.compile(r"\s(\d+\.\d+): tls_device_rekey_(\w+): sk=(\S+) (.*)")
f2, all_ratios, all_raw, all_delays, unpaced, immediate = [], [], [], [], [], 0
delay_sends, send_ms = [], []
for r in pick(2):
    path = "%s/trace.rtt%d.%s.txt" % (out, r["rtt_ms"], "sndbuf%d.paced" % r["sndbuf"]
                                      if r["paced"] else "unpaced")
    # the floor of each window: what was in flight, or one round trip
    # (TCP's srtt at the update) of the application's data if more
    rate = (3 if r["paced"] else r["mibps"]) * 2**20 / 1e6  # bytes per us
    rtts = [int(x) for x in str(r["srtt_us"]).split(",")]
    starts, retired, ratios, raw, delays, sends = {}, {}, [], [], [], {}
    updates = 0
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
            sends[sk] = 0
        elif kind == "reinstall" and f["direction"] == "1" and sk in starts:
            inflight, srtt = starts.pop(sk)
            if inflight == 0:
                immediate += 1
                continue
            ratios.append(int(f["sw_bytes"]) / max(inflight, rate * srtt))
            raw.append(int(f["sw_bytes"]) / inflight)
            if sk in retired and r["paced"]:
                delays.append((t - retired.pop(sk)) * 1e3)
                delay_sends.append(sends.pop(sk))
    f2.append({"rtt_ms": r["rtt_ms"], "sndbuf": r["sndbuf"], "paced": r["paced"],
               "updates": len(ratios),
               "sw_over_floor": med(ratios), "spread": spread(ratios),
               "sw_over_inflight": med(raw), "raw_spread": spread(raw),
               "srtt_us": med(rtts),
               "inflight_mean_b": r["outq_sum"] / max(r["points"], 1),
               "reinstall_delay_sends": med(delays), "mibps": r["mibps"]})
    send_ms.append(r["send_us"] / 1e3)
    if not r["paced"]:
        unpaced += ratios
        row(2, "  unpaced, RTT %d ms (SW path faster than the simulated device)"
            % r["rtt_ms"], med(ratios), spread(ratios))
        all_raw += raw
        continue
    all_ratios += ratios
    all_raw += raw
    all_delays += delays
    row(2, "SW bytes / floor, RTT %d ms (srtt %.1f ms), sndbuf %d K" % (
        r["rtt_ms"], med(rtts) / 1e3, r["sndbuf"] >> 10), med(ratios), spread(ratios))
    row(2, "  SW bytes / bytes in flight alone", med(raw), spread(raw))
m2 = med(all_ratios)
figures["2_sw_window"] = {"runs": f2, "median": m2, "spread": spread(all_ratios),
                          "unpaced_median": med(unpaced),
                          "floor": "max(bytes in flight, pacing rate x srtt)",
                          "updates": len(all_ratios), "installed_at_once": immediate}
row(2, "SW bytes / floor, all %d paced updates" % len(all_ratios), m2, spread(all_ratios),
    "<= 1.2", m2 is not None and m2 <= 1.2)
m3 = med(delay_sends)
figures["3_reinstall_delay"] = {"median_sends": m3, "sends_spread": spread(delay_sends),
                                "median_ms": med(all_delays), "ms_spread": spread(all_delays),
                                "send_interval_ms": med(send_ms), "windows": len(all_delays)}
# the device gets the key at the first send after a grace period from the
# retirement (12 ms here: 3 ticks at HZ=250); the sends before it go in SW
m3ms = med(all_delays)
row(3, "retire -> device key in ms (a grace period and a send interval, %.1f ms)"
    % (med(send_ms) or 0), m3ms, spread(all_delays), "<= 20",
    m3ms is not None and m3ms <= 20)
row(3, "  send() calls started meanwhile (in SW)", m3, spread(delay_sends))

# 4: a key update every MiB
thr = by_rep(1, "none", 4, "every_mib", "mibps")
hw = [r["hw_records"] / r["records"] for r in pick(4)]
figures["4_update_every_mib"] = {"throughput_ratio": med(thr), "spread": spread(thr),
                                 "hw_share": med(hw),
                                 "mibps": med([r["mibps"] for r in pick(4)])}
row(4, "throughput update every MiB / none", med(thr), spread(thr), ">= 0.9",
    med(thr) is not None and med(thr) >= 0.9)

# 5: setsockopt(TLS_TX) and setsockopt(TLS_RX) latency
f5 = {}
for r in pick(5):
    if r["offloaded"] != (r["device"] == "on"):
        note("fig5", "%s with TLS offload %s, but the socket was%s offloaded" % (
            r["case"], r["device"], "" if r["offloaded"] else " not"))
fig5_cases = {"idle": "TX, nothing in flight", "busy": "TX, record in flight",
              "rx_idle": "RX, nothing queued", "rx_busy": "RX, a record queued"}
for case in fig5_cases:
    hw = pick(5, case=case, offloaded=1, device="on")
    sw = pick(5, case=case, offloaded=0, device="off")
    if not hw or not sw:
        note("fig5", "%s: no run %s" % (case, "offloaded" if not hw else "in SW"))
        continue
    hw, sw = hw[0], sw[0]
    if not sw["median_us"] or not sw["p10_us"]:
        note("fig5", "the SW latency measured 0 us: the clock is too coarse")
        continue
    ratio = hw["median_us"] / sw["median_us"]
    f5[case] = {"offloaded_us": hw["median_us"], "offloaded_p10_p90": [hw["p10_us"], hw["p90_us"]],
                "sw_us": sw["median_us"], "sw_p10_p90": [sw["p10_us"], sw["p90_us"]],
                "ratio": ratio, "n": hw["n"]}
    swrec = ""
    if "sw_records_median" in hw:
        f5[case]["sw_records_median"] = hw["sw_records_median"]
        f5[case]["sw_records_max"] = hw["sw_records_max"]
        swrec = ", %d (max %d) SW records" % (hw["sw_records_median"], hw["sw_records_max"])
    row(5, "setsockopt %s: %.0f / %.0f us%s" % (
        fig5_cases[case], hw["median_us"], sw["median_us"], swrec),
        ratio, [hw["p10_us"] / sw["p90_us"], hw["p90_us"] / sw["p10_us"]], "<= 2", ratio <= 2)
figures["5_setsockopt_latency"] = f5

# 6: scale (ACKs 200 ms late: every update pending at once)
f6 = []
base = pick(6, conns=1)
for r in sorted(pick(6), key=lambda r: r["conns"]):
    per_ack = r["cpu_per_ack_us"] / base[0]["cpu_per_ack_us"] if base else None
    f6.append({"conns": r["conns"], "setsockopt_s": r["setsockopt_s"], "acked_s": r["acked_s"],
               "back_in_hw_s": r["back_in_hw_s"], "sends_each": r["rounds"],
               "pending_at_once": r["in_window"], "slab_per_update_b": r["slab_per_update_b"],
               "slab_left_per_conn_b": r["slab_after_b"], "cpu_per_ack_us": r["cpu_per_ack_us"],
               "cpu_per_ack_vs_1": per_ack, "left_in_sw": r["in_window_after"]})
    row(6, "%d conns (%d pending): all in HW %.2f s after the ACKs, %.0f B/update"
        % (r["conns"], r["in_window"], r["back_in_hw_s"] - r["acked_s"], r["slab_per_update_b"]),
        per_ack, None, "CPU/ACK vs 1 conn ~1", None)
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
        v["rx_dels_per_window"]), None, None, "exactly 1", exact)
figures["7_device_work"] = f7

# 8: a socket kept in SW against a SW socket
thr8 = by_rep(8, "sw", 8, "stay_sw", "mibps")
# one SW window (the first update), no key taken by the device
if not all(r["tx_adds"] == 0 and r["tx_windows"] == 1 for r in pick(8, case="stay_sw")):
    note("fig8", "the device took a key it was to refuse, or the socket left SW")
    thr8 = []
figures["8_stay_sw"] = {"throughput_ratio": med(thr8), "spread": spread(thr8)}
row(8, "throughput kept in SW / SW socket", med(thr8), spread(thr8), ">= 0.9",
    med(thr8) is not None and med(thr8) >= 0.9)

json.dump({"figures": figures, "runs": runs}, open(out + "/results.json", "w"), indent=1)


def fmt(x):
    return "-" if x is None else "%.3g" % x


print("\n%-3s %-62s %8s %17s  %s" % ("fig", "measurement", "median", "spread", "target"))
for fig, what, m, sp, target, ok in rows:
    sp_s = "[%s, %s]" % (fmt(sp[0]), fmt(sp[1])) if sp else ""
    verdict = "" if target is None else target + ("" if ok is None else (": met" if ok else ": NOT MET"))
    print("%-3d %-62s %8s %17s  %s" % (fig, what, fmt(m), sp_s, verdict))

if quick:
    # every figure present and made of whole runs; device counts exact
    checks = [
        ("fig1", all(pick(1, case=c) for c in ("none", "observe", "pending"))),
        ("fig2", len(all_ratios) > 0),
        ("fig3", len(delay_sends) > 0),
        ("fig4", bool(pick(4))),
        ("fig5", len(f5) == len(fig5_cases)),
        ("fig6", len(f6) >= 2 and all(r["left_in_sw"] == 0 for r in f6)),
        ("fig7", bool(f7) and all(
            v[k] == 1 for v in f7.values() for k in v if k.endswith("per_window"))),
        ("fig8", bool(thr8)),
        ("every_byte_intact", all(r.get("intact", 1) == 1 for r in runs)),
    ]
    print("TAP version 13\n1..%d" % len(checks))
    for i, (name, ok) in enumerate(checks, 1):
        why = "" if ok or name not in notes else " # " + "; ".join(notes[name])
        print("%sok %d bench.%s%s" % ("" if ok else "not ", i, name, why))
    sys.exit(0 if all(ok for _, ok in checks) else 1)
