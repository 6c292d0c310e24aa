"""report.py - bench results as CSV, a Markdown summary and a PNG plot.

write_all(results_dir, rows, idle_rows, env, notes) writes:
  throughput.csv   one row per measured (or unavailable) run: ceiling,
                   accept, relay and plugin scenarios
  idle.csv         one row per idle-session run
  env.txt          the machine, versions and date of the run
  summary.md       side-by-side tables (Postilion/Postfix ratio), the
                   generator ceilings, the targets of issue 4 with pass/miss
  throughput.png   msgs/s against sessions for both MTAs (gnuplot), when
                   gnuplot is installed
Figures are copied from the rows; nothing is computed here but ratios,
per-target checks and the layout.
"""
import csv
import math
import os
import shutil
import subprocess

COLUMNS = ["scenario", "chain", "mta", "generator", "size", "sessions",
           "per_session", "messages", "ok", "queued", "delivered", "elapsed_s",
           "msgs_per_s", "mta_cpu_s", "cpu_ms_per_msg", "gen_cpu_s",
           "peak_rss_mib", "peak_pss_mib", "lat_p50_ms", "lat_p99_ms", "lat_write_p99_ms", "runs",
           "msgs_per_s_min", "msgs_per_s_max", "spread_pct", "cpu_ms_per_msg_min",
           "cpu_ms_per_msg_max", "lat_p99_ms_min", "lat_p99_ms_max", "cpu_vs",
           "cpu_share_pct", "cpu_share_pct_min", "cpu_share_pct_max", "status", "note"]
IDLE_COLUMNS = ["mta", "idle", "established", "held", "ramp_s", "processes",
                "rss_kib_per_session", "pss_kib_per_session",
                "memavail_kib_per_session", "rss_total_mib", "cpu_s",
                "banner_p50_ms", "banner_max_ms", "probes", "probe_failed",
                "status", "note"]

TARGETS = dict(accept_ratio=5.0, relay_ratio=3.0, cpu_ms=0.2, p99_ms=10.0,
               idle_kib=16.0, banner_ms=50.0)


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


def size_label(size):
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def fmt(v, digits=1):
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def key(r):
    return (r["scenario"], r.get("chain", ""), r["generator"], r["size"],
            r["sessions"], r["per_session"])


def pairs(rows, scenario):
    """[(key, postfix_row, postilion_row)] in run order."""
    out, seen = [], {}
    for r in rows:
        if r["scenario"] != scenario or r["mta"] not in ("postfix", "postilion"):
            continue
        k = key(r)
        if k not in seen:
            seen[k] = {}
            out.append(k)
        seen[k][r["mta"]] = r
    return [(k, seen[k].get("postfix"), seen[k].get("postilion")) for k in out]


def measured(r):
    return r is not None and r.get("status") not in ("not available", None) \
        and r.get("msgs_per_s") is not None


def ratio(pf, pst):
    if measured(pf) and measured(pst) and pf["msgs_per_s"]:
        return pst["msgs_per_s"] / pf["msgs_per_s"]
    return None


def ceiling_for(rows, r):
    for c in rows:
        if (c["scenario"] == "ceiling" and c["generator"] == r[2] and
                c["size"] == r[3] and c["sessions"] == r[4] and
                c["per_session"] == r[5]):
            return c.get("msgs_per_s")
    return None


def side(r, field, digits=1):
    """A figure as "median (min-max)" when the row holds repeated runs."""
    if r is None:
        return "-"
    if r.get("status") == "not available":
        return "n/a"
    low, high = r.get(field + "_min"), r.get(field + "_max")
    if low is not None and high is not None and r.get("runs", 1) > 1:
        return f"{fmt(r.get(field), digits)} ({fmt(low, digits)}-{fmt(high, digits)})"
    return fmt(r.get(field), digits)


def mem(r):
    if r is None or r.get("status") == "not available":
        return side(r, "peak_rss_mib")
    return f"{fmt(r.get('peak_rss_mib'))} ({fmt(r.get('peak_pss_mib'))})"


def scenario_table(rows, scenario):
    lines = ["| size | sessions | msgs/session | generator | Postfix msg/s | "
             "Postilion msg/s | ratio | CPU ms/msg PF / PST | peak RSS (PSS) MiB PF / PST "
             "| p50 ms PF / PST | p99 ms PF / PST | p99 from MAIL write ms PF / PST "
             "| generator ceiling msg/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for k, pf, pst in pairs(rows, scenario):
        rt = ratio(pf, pst)
        ceil = ceiling_for(rows, k)
        flag = ""
        for r in (pf, pst):
            if measured(r) and ceil and r["msgs_per_s"] > 0.8 * ceil:
                flag = " (near the generator's ceiling)"
            if r is not None and r.get("status") not in ("ok", "time-capped",
                                                         "not available"):
                notes.append(f"{r['mta']} {size_label(k[3])} {k[4]} sessions "
                             f"{k[5]}/session {k[2]}: {r.get('status')} "
                             f"{r.get('note', '')}".strip())
        lines.append(
            f"| {size_label(k[3])} | {k[4]} | {'1' if k[5] == '1' else 'many'} | {k[2]} "
            f"| {side(pf, 'msgs_per_s')} | {side(pst, 'msgs_per_s')} "
            f"| {fmt(rt, 2) + 'x' if rt else '-'}{flag} "
            f"| {side(pf, 'cpu_ms_per_msg', 3)} / {side(pst, 'cpu_ms_per_msg', 3)} "
            f"| {mem(pf)} / {mem(pst)} "
            f"| {side(pf, 'lat_p50_ms', 2)} / {side(pst, 'lat_p50_ms', 2)} "
            f"| {side(pf, 'lat_p99_ms', 2)} / {side(pst, 'lat_p99_ms', 2)} "
            f"| {side(pf, 'lat_write_p99_ms', 2)} / {side(pst, 'lat_write_p99_ms', 2)} "
            f"| {fmt(ceil)} |")
    unavailable = sorted({r.get("note", "") for r in rows
                          if r["scenario"] == scenario and r["mta"] == "postilion"
                          and r.get("status") == "not available"})
    for u in unavailable:
        notes.append(f"Postilion: {u}")
    return lines, notes


def ceiling_table(rows):
    lines = ["| size | sessions | msgs/session | smtp-source msg/s | smtp-source CPU s "
             "| loadgen msg/s | loadgen CPU s | loadgen p99 ms |",
             "|---|---|---|---|---|---|---|---|"]
    combos = []
    for r in rows:
        if r["scenario"] == "ceiling":
            c = (r["size"], r["sessions"], r["per_session"])
            if c not in combos:
                combos.append(c)
    for c in combos:
        by = {r["generator"]: r for r in rows if r["scenario"] == "ceiling"
              and (r["size"], r["sessions"], r["per_session"]) == c}
        ss, lg = by.get("smtp-source"), by.get("loadgen")
        lines.append(f"| {size_label(c[0])} | {c[1]} | {'1' if c[2] == '1' else 'many'} "
                     f"| {side(ss, 'msgs_per_s')} | {side(ss, 'gen_cpu_s', 2)} "
                     f"| {side(lg, 'msgs_per_s')} | {side(lg, 'gen_cpu_s', 2)} "
                     f"| {side(lg, 'lat_p99_ms', 2)} |")
    return lines


def idle_table(idle_rows):
    lines = ["| MTA | idle sessions | established | RSS KiB/session | PSS KiB/session "
             "| MemAvailable KiB/session | total RSS MiB | new banner p50 / max ms "
             "| status |", "|---|---|---|---|---|---|---|---|---|"]
    for r in idle_rows:
        if r.get("status") == "not available":
            lines.append(f"| {r['mta']} | {fmt(r['idle'])} | n/a | n/a | n/a | n/a "
                         f"| n/a | n/a | not available: {r.get('note', '')} |")
            continue
        lines.append(f"| {r['mta']} | {fmt(r['idle'])} | {fmt(r.get('established'))} "
                     f"| {fmt(r.get('rss_kib_per_session'))} "
                     f"| {fmt(r.get('pss_kib_per_session'))} "
                     f"| {fmt(r.get('memavail_kib_per_session'))} "
                     f"| {fmt(r.get('rss_total_mib'))} "
                     f"| {fmt(r.get('banner_p50_ms'), 2)} / {fmt(r.get('banner_max_ms'), 2)} "
                     f"| {r.get('status')} {r.get('note', '')} |")
    return lines


def milter_target_rows(found, label):
    """Issue 20: through rspamd as a milter, Postilion's own CPU per
    message at most a third of Postfix's (rspamd's CPU counts for
    neither)."""
    name = "milter (rspamd), own CPU per message: Postilion <= 1/3 of Postfix"
    if not found:
        return [(name, "not run", "-")]
    out = []
    for k, pf, pst in found:
        if not (measured(pf) and measured(pst)) or not pf.get("cpu_ms_per_msg") \
                or pst.get("cpu_ms_per_msg") is None:
            why = (pst or {}).get("note") or (pf or {}).get("note") or "not measured"
            out.append((f"{name} ({label(k)})", why, "not measurable"))
            continue
        share = pst["cpu_ms_per_msg"] / pf["cpu_ms_per_msg"]
        out.append((f"{name} ({label(k)})",
                    f"{share:.2f} ({pst['cpu_ms_per_msg']:.3f} vs "
                    f"{pf['cpu_ms_per_msg']:.3f} ms/msg)",
                    "met" if share <= 1 / 3 else f"missed ({share:.2f} > 0.33)"))
    return out


def dmarc_target_rows(found, label):
    """Issue 15: the receiving side's full chain (spf + dkim-verify +
    dmarc) at least 3x Postfix with policyd-spf, OpenDKIM and OpenDMARC;
    and the DMARC step adding at most 10% CPU per message to it (the dmarc
    chain against dkim-verify, Postilion's CPU, same run)."""
    chains = {}
    for k, pf, pst in found:
        chains[(k[1], k[2], k[5])] = (pf, pst)
    out = []
    for (chain, gen, per), (pf, pst) in chains.items():
        if chain != "dmarc":
            continue
        what = f"{gen}, {'1' if per == '1' else 'many'} msg/session"
        rt = ratio(pf, pst)
        name = ("full chain spf+dkim-verify+dmarc: Postilion >= 3x Postfix "
                f"+ policyd-spf + OpenDKIM + OpenDMARC ({what})")
        out.append((name, "not measured", "not measurable") if rt is None else
                   (name, f"{rt:.2f}x ({fmt(pst['msgs_per_s'])} vs "
                    f"{fmt(pf['msgs_per_s'])} msg/s; CPU per message "
                    f"{fmt(pst.get('cpu_ms_per_msg'), 3)} vs "
                    f"{fmt(pf.get('cpu_ms_per_msg'), 3)} ms"
                    + (f", {pf['cpu_ms_per_msg'] / pst['cpu_ms_per_msg']:.1f}x less"
                       if pf.get("cpu_ms_per_msg") and pst.get("cpu_ms_per_msg") else "")
                    + ")",
                    "met" if rt >= 3 else f"missed ({rt:.2f}x)"))
        _, base = chains.get(("dkim-verify", gen, per), (None, None))
        name = f"DMARC step adds <= 10% CPU per message to the chain ({what})"
        if base is None or not (measured(base) and measured(pst)) \
                or not base.get("cpu_ms_per_msg") or pst.get("cpu_ms_per_msg") is None:
            out.append((name, "needs the dkim-verify chain in the same run",
                        "not measurable"))
            continue
        if pst.get("cpu_share_pct") is not None:
            # interleaved runs: the median of the per-round ratios
            share = pst["cpu_share_pct"] / 100
            out.append((name, f"{share:+.1%} (median of {pst['runs']} interleaved "
                        f"rounds, range {pst['cpu_share_pct_min']:+.1f}% to "
                        f"{pst['cpu_share_pct_max']:+.1f}%; {pst['cpu_ms_per_msg']:.3f} vs "
                        f"{base['cpu_ms_per_msg']:.3f} ms/msg)",
                        "met" if share <= 0.10 else f"missed ({share:+.1%})"))
            continue
        share = pst["cpu_ms_per_msg"] / base["cpu_ms_per_msg"] - 1
        out.append((name, f"{share:+.0%} ({pst['cpu_ms_per_msg']:.3f} vs "
                    f"{base['cpu_ms_per_msg']:.3f} ms/msg; ranges "
                    f"{pst.get('cpu_ms_per_msg_min')}-{pst.get('cpu_ms_per_msg_max')} vs "
                    f"{base.get('cpu_ms_per_msg_min')}-{base.get('cpu_ms_per_msg_max')})",
                    "met" if share <= 0.10 else f"missed ({share:+.0%})"))
    return out


def target_rows(rows, idle_rows):
    """[(target, measured, verdict)].  Paced runs (bench/run --rate) offer
    both MTAs the same load, so ratios and saturation latency do not apply."""
    out = []
    rows = [r for r in rows if "paced" not in r.get("generator", "")]

    def pick(scenario, size, sessions, per_session=None):
        return [(k, pf, pst) for k, pf, pst in pairs(rows, scenario)
                if k[3] == size and k[4] == sessions and
                (per_session is None or k[5] == per_session)]

    def label(k):
        return f"{k[2]}, {'1' if k[5] == '1' else 'many'} msg/session"

    for scenario, limit, name in (("accept", TARGETS["accept_ratio"],
                                   "accept 1 KiB, 50 sessions: Postilion >= 5x Postfix"),
                                  ("relay", TARGETS["relay_ratio"],
                                   "relay end to end 1 KiB, 50 sessions: >= 3x Postfix")):
        found = pick(scenario, 1024, 50)
        if not found:
            out.append((name, "not run", "-"))
        if found and all(ratio(pf, pst) is None for _, pf, pst in found):
            whys = sorted({(pst or {}).get("note") or "not measured"
                           for _, pf, pst in found})
            out.append((name, "Postilion: " + "; ".join(whys), "not measurable"))
            continue
        for k, pf, pst in found:
            rt = ratio(pf, pst)
            if rt is None:
                why = pst.get("note", "not measured") if pst else "not measured"
                out.append((f"{name} ({label(k)})", why, "not measurable"))
            else:
                verdict = "met" if rt >= limit else f"missed by {limit - rt:.2f}x ({rt / limit:.0%} of target)"
                out.append((f"{name} ({label(k)})",
                            f"{rt:.2f}x ({fmt(pst['msgs_per_s'])} vs {fmt(pf['msgs_per_s'])} msg/s)",
                            verdict))
    # CPU per accepted message, every measured accept run of Postilion
    cpu = [r for r in rows if r["scenario"] == "accept" and r["mta"] == "postilion"
           and measured(r) and r.get("cpu_ms_per_msg") is not None and r["size"] == 1024]
    if cpu:
        worst = max(cpu, key=lambda r: r["cpu_ms_per_msg"])
        best = min(cpu, key=lambda r: r["cpu_ms_per_msg"])
        v = worst["cpu_ms_per_msg"]
        out.append(("CPU per accepted 1 KiB message < 0.2 ms (worst run)",
                    f"{v:.3f} ms ({worst['sessions']} sessions, {worst['per_session']}/session, "
                    f"{worst['generator']}); best {best['cpu_ms_per_msg']:.3f} ms",
                    "met" if v < TARGETS["cpu_ms"] else f"missed by {v - TARGETS['cpu_ms']:.3f} ms"))
    else:
        out.append(("CPU per accepted message < 0.2 ms", "Postilion not measured",
                    "not measurable"))
    out += milter_target_rows(pick("milter", 1024, 50), label)
    out += dmarc_target_rows(pick("plugins", 1024, 50), label)
    lat = [r for r in rows if r["scenario"] == "accept" and r["mta"] == "postilion"
           and measured(r) and r["sessions"] == 50 and r.get("lat_p99_ms") is not None]
    if lat:
        for r in lat:
            v = r["lat_p99_ms"]
            out.append((f"p99 transaction latency at 50 sessions < 10 ms "
                         f"({size_label(r['size'])}, {'1' if r['per_session'] == '1' else 'many'}"
                         f" msg/session)", f"{v:.2f} ms",
                         "met" if v < TARGETS["p99_ms"] else f"missed by {v - TARGETS['p99_ms']:.2f} ms"))
    else:
        out.append(("p99 transaction latency at 50 sessions < 10 ms",
                    "Postilion not measured", "not measurable"))
    idle = [r for r in idle_rows if r["mta"] == "postilion" and r["idle"] == 5000
            and r.get("status") not in ("not available", "failed")]
    if idle:
        r = idle[0]
        v, b = r["rss_kib_per_session"], r["banner_max_ms"]
        out.append(("5,000 idle sessions: < 16 KiB RSS each", f"{v:.1f} KiB",
                    "met" if v < TARGETS["idle_kib"] else f"missed by {v - TARGETS['idle_kib']:.1f} KiB"))
        out.append(("5,000 idle sessions: new banner within 50 ms (max of probes)",
                    f"{b:.2f} ms", "met" if b < TARGETS["banner_ms"]
                    else f"missed by {b - TARGETS['banner_ms']:.2f} ms"))
    else:
        out.append(("5,000 idle sessions: < 16 KiB RSS each, banner < 50 ms",
                    "Postilion not measured", "not measurable"))
    return out


def write_markdown(path, rows, idle_rows, env, notes):
    md = ["# Postilion vs Postfix: benchmark results", "",
          f"Written by `bench/run` on {env['date']} ({env['profile']} run, "
          f"{env['duration_s']} s). Machine: {env['cpus']} x {env['cpu_model']}, "
          f"Linux {env['kernel']}; queues on {env['filesystem']} ({env['workdir']}, "
          f"--queue-fs {env.get('queue_fs', 'dir')}, --age-files "
          f"{env.get('age_files', 0)}): creating a 1 KiB file cost "
          f"{env.get('file_create_us_start')} µs of CPU before the run and "
          f"{env.get('file_create_us_end')} µs after, a write+fsync of a new file "
          f"{env.get('fsync_ms_start')} / {env.get('fsync_ms_end')} ms; "
          f"a sleep and wake-up (bench/wakecost.c: a round trip over a "
          f"socketpair, processes on one CPU / on two / placed by the "
          f"scheduler) cost {env.get('wake_us_start', '?')} µs of CPU before "
          f"the run and {env.get('wake_us_end', '?')} after (it differs "
          f"several-fold between machines, most in virtual ones; an MTA's main "
          f"loop sleeps about ten times per message at one session). "
          f"Postfix {env['postfix']} (accept mode: {env['postfix_accept_mode']}); "
          f"Postilion {env['postilion']} at commit {env['postilion_commit']} "
          f"(binary {env.get('postiliond_binary', '-')}).", "",
          "Rates count messages answered 250 after the final dot (accept) or "
          "received by smtp-sink (relay, end to end). CPU is the MTA's own "
          "(all its processes), divided by messages. Latency is measured by "
          "loadgen: from connect() to the 250 after the dot for a connection's "
          "first message; for later ones from writing MAIL, or from the "
          "previous message's 250 when that came later (a pipelined MAIL goes "
          "out with the previous message's content: \"p99 from MAIL write\" "
          "counts from the write). Peak RSS is summed "
          "over the MTA's processes (Postfix: master, smtpd, cleanup, "
          "trivial-rewrite, qmgr, ...), which counts shared library pages once "
          "per process; PSS, in parentheses, shares them fairly. PF = Postfix, "
          "PST = Postilion. Status time-capped: the run reached its time cap "
          "before its message count, with no failure (the rate stands). "
          f"Each figure is the median of {env.get('repeat', 1)} runs of at least "
          f"{env.get('min_seconds', 0)} s each, with the smallest and largest "
          "value in parentheses: a ratio whose two ranges overlap is within "
          "the noise.", ""]
    if env.get("load_start", 0.0) > 0.3 or env.get("load_end", 0.0) > 0.3:
        md[4:4] = [f"**Warning: other work shared the machine during this run "
                   f"({env.get('load_start')} cores busy before it started, "
                   f"{env.get('load_end')} after it ended, of {env['cpus']}): "
                   f"absolute figures are low and noisy; ratios from the same "
                   f"run are more robust, but rerun on a quiet machine.**", ""]
    md += ["## Targets (issue 4)", "", "| target | measured | verdict |", "|---|---|---|"]
    for t, m, v in target_rows(rows, idle_rows):
        md.append(f"| {t} | {m} | {v} |")
    all_notes = list(notes)
    for scenario, title in (("accept", "Accept (queued, not delivered)"),
                            ("relay", "Relay to smtp-sink (end to end)"),
                            ("plugins", "With plugins (accept, 1 KiB)"),
                            ("milter", "Through rspamd as a milter (accept, 1 KiB; "
                                       "CPU is each MTA's own, rspamd's apart)")):
        if not any(r["scenario"] == scenario for r in rows):
            continue
        lines, n = scenario_table(rows, scenario)
        if scenario == "plugins":
            lines, n = plugin_table(rows)
        if scenario == "milter":
            lines, n = plugin_table(rows, "milter")
        md += ["", f"## {title}", ""] + lines
        all_notes += n
    if idle_rows:
        md += ["", "## Idle sessions (after EHLO)", ""] + idle_table(idle_rows)
    if any(r["scenario"] == "ceiling" for r in rows):
        md += ["", "## Generator ceilings (against smtp-sink, same flags)", "",
               "A generator is the limit when an MTA's rate comes near these.", ""]
        md += ceiling_table(rows)
    if all_notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in dict.fromkeys(all_notes)]
    md += ["", "Raw figures: `throughput.csv`, `idle.csv`; plot: `throughput.png`; "
           "machine: `env.txt`."]
    md += ["The figures of each round, with the analysis of what was missed, are "
           "kept in bench/README.md (this directory is not tracked)."]
    md.append("")
    with open(path, "w") as f:
        f.write("\n".join(md))


def plugin_table(rows, scenario="plugins"):
    lines = ["| chain | msgs/session | generator | Postfix (+ helpers) msg/s "
             "| Postilion msg/s | ratio | CPU ms/msg PF / PST | peak RSS (PSS) MiB PF / PST "
             "| p99 ms PF / PST | p99 from MAIL write ms PF / PST |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for k, pf, pst in pairs(rows, scenario):
        rt = ratio(pf, pst)
        lines.append(f"| {k[1]} | {'1' if k[5] == '1' else 'many'} | {k[2]} "
                     f"| {side(pf, 'msgs_per_s')} | {side(pst, 'msgs_per_s')} "
                     f"| {fmt(rt, 2) + 'x' if rt else '-'} "
                     f"| {side(pf, 'cpu_ms_per_msg', 3)} / {side(pst, 'cpu_ms_per_msg', 3)} "
                     f"| {mem(pf)} / {mem(pst)} "
                     f"| {side(pf, 'lat_p99_ms', 2)} / {side(pst, 'lat_p99_ms', 2)} "
                     f"| {side(pf, 'lat_write_p99_ms', 2)} / {side(pst, 'lat_write_p99_ms', 2)} |")
        for r in (pf, pst):
            if r is not None and r.get("status") not in ("ok", "time-capped"):
                notes.append(f"{k[1]}, {r['mta']}: {r.get('status')}: {r.get('note', '')}")
    return lines, notes


def write_plot(results, rows):
    """msgs/s against sessions, one panel per scenario and size."""
    if not shutil.which("gnuplot"):
        return "gnuplot not installed: no plot"
    panels = []
    for scenario in ("accept", "relay"):
        for size in sorted({r["size"] for r in rows if r["scenario"] == scenario}):
            series = []
            for mta in ("postfix", "postilion"):
                for per in ("1", "many"):
                    gen = "loadgen" if any(r["generator"] == "loadgen" for r in rows) \
                        else "smtp-source"
                    pts = sorted((r["sessions"], r["msgs_per_s"]) for r in rows
                                 if r["scenario"] == scenario and r["size"] == size
                                 and r["mta"] == mta and r["per_session"] == per
                                 and r["generator"] == gen and measured(r))
                    if pts:
                        series.append((f"{mta}, {per} msg/session ({gen})", pts))
            if series:
                panels.append((f"{scenario}, {size_label(size)}", series))
    if not panels:
        return "nothing measured to plot"
    datadir = os.path.join(results, ".plot")
    os.makedirs(datadir, exist_ok=True)
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    script = [f"set terminal pngcairo size {560 * cols},{460 * rows} font 'sans,9'",
              f"set output '{os.path.join(results, 'throughput.png')}'",
              f"set multiplot layout {rows},{cols}",
              "set logscale x", "set xtics (1, 10, 50)", "set xrange [0.8:65]",
              "set logscale y", "set grid", "set key below",
              "set xlabel 'concurrent sessions'", "set ylabel 'messages/s'"]
    colors = {"postfix": "#c0392b", "postilion": "#2166ac"}
    for i, (title, series) in enumerate(panels):
        plots = []
        for j, (name, pts) in enumerate(series):
            dat = os.path.join(datadir, f"p{i}s{j}.dat")
            with open(dat, "w") as f:
                for x, y in pts:
                    f.write(f"{x} {y}\n")
            color = colors["postilion" if name.startswith("postilion") else "postfix"]
            dash, point = (1, 7) if ", 1 msg" in name else (2, 5)
            plots.append(f"'{dat}' using 1:2 with linespoints lw 2 pt {point} dt {dash} "
                         f"lc rgb '{color}' title '{name}'")
        script.append(f"set title '{title}'")
        script.append("plot " + ", ".join(plots))
    script.append("unset multiplot")
    r = subprocess.run(["gnuplot"], input="\n".join(script), text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    shutil.rmtree(datadir, ignore_errors=True)
    return None if r.returncode == 0 else "gnuplot failed: " + r.stdout[-300:]


def write_all(results, rows, idle_rows, env, notes):
    os.makedirs(results, exist_ok=True)
    write_csv(os.path.join(results, "throughput.csv"), COLUMNS, rows)
    write_csv(os.path.join(results, "idle.csv"), IDLE_COLUMNS, idle_rows)
    with open(os.path.join(results, "env.txt"), "w") as f:
        for k, v in env.items():
            f.write(f"{k}: {v}\n")
    problem = write_plot(results, rows)
    notes = list(notes) + ([problem] if problem else [])
    write_markdown(os.path.join(results, "summary.md"), rows, idle_rows, env, notes)
