"""docs/benchmarks.md from the results of a run: one function per section of the page. Every
table and plot is followed by the line naming the command that produced it (``Page.by``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eqfpga.golden.study import study_table

from .published import published
from .speed import ENERGY_NOTE, compare

PHASES = ["load", "key", "input_drive", "free_steps", "nudged_steps", "update", "drain_and_result"]


# ---- formatting ------------------------------------------------------------------------------
def pct(x, d=2):
    return "-" if x is None else f"{100 * x:.{d}f}%"


def num(x, d=0):
    return "-" if x is None else f"{x:,.{d}f}"


def si(x, unit=""):
    if x is None:
        return "-"
    for k, s in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= k:
            return f"{x / k:.3g} {s}{unit}"
    return f"{x:.3g} {unit}".strip()


def spread(st, as_pct=True, d=2):
    """mean ± std (min-max) of a ``stats`` dict."""
    if not st or st.get("mean") is None:
        return "-"
    f = (lambda v: f"{100 * v:.{d}f}") if as_pct else (lambda v: f"{v:,.{d}f}")
    s = f"{f(st['mean'])}"
    if st["n"] > 1:
        s += f" ± {f(st['std'])} ({f(st['min'])}-{f(st['max'])})"
    return s + ("%" if as_pct else "")


def table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Page:
    """What every section writes beside its figures: the command, the quick mark, the credit line."""
    meta: dict

    @property
    def cmd(self) -> str:
        return self.meta["command"]

    @property
    def quick(self) -> bool:
        return self.meta["quick"]

    @property
    def q(self) -> str:
        return " (quick)" if self.quick else ""

    @property
    def by(self) -> str:
        return f"_Produced by `{self.cmd}`, {self.meta['date']}._"


# ---- the page --------------------------------------------------------------------------------
def write_markdown(res: dict, out_dir) -> str:
    """Write ``benchmarks.md`` into ``out_dir``; return its text."""
    pg = Page(res["meta"])
    L = intro(res, pg) + failures(res) + headline(res, pg)
    if res.get("accuracy"):
        L += accuracy_section(res["accuracy"], pg)
    if res.get("precision"):
        L += precision_section(res["precision"], pg)
    if res.get("speed"):
        L += speed_section(res["speed"], pg)
    if res.get("sim"):
        L += simulation_section(res["sim"], res, pg)
    if res.get("scaling"):
        L += scaling_section(res["scaling"], pg)
    L += reproduce(pg)
    text = "\n".join(L) + "\n"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "benchmarks.md").write_text(text)
    return text


def intro(res: dict, pg: Page) -> list:
    meta = pg.meta
    L = [f"# Benchmarks{pg.q}", "",
         f"Every measured figure on this page was produced by one run of `{pg.cmd}` "
         f"(commit {meta['git']['commit']}{', with uncommitted changes' if meta['git']['dirty'] else ''}; "
         f"{meta['date']}; {meta.get('duration_s', 0):.0f} s) on {meta['machine']['cpu']} "
         f"({meta['machine']['cores']} cores, no accelerator). Load average (1, 5, 15 min) before: "
         f"{meta['load_before']}, after: {meta.get('load_after')}: other jobs may have shared the cores, so "
         "speeds are lower bounds. Published figures (marked so) are quoted from EP-NOTES.md for comparison; figures "
         "read from board build or synthesis reports name the report and its date. "
         "Raw figures: [benchmarks.json](benchmarks.json)."]
    if pg.quick:
        L += ["", "**Quick run**: fewer training samples, a test subset, short repeats and cached synthesis "
              "reports; `eqfpga bench` (no `--quick`) runs the full definitions (all 60,000 training and "
              "10,000 test images, 1 epoch, 3 seeds)."]
    return L


def failures(res: dict) -> list:
    failed = dict(res.get("failed") or {})
    acc = res.get("accuracy")
    if acc and acc.get("rtl_failed"):
        failed["accuracy (RTL runs)"] = acc["rtl_failed"]
    if not failed:
        return []
    return (["", "**Failed in this run** (the rest of the page stands):", ""]
            + [f"- {k}: `{v.splitlines()[0][:300]}`" for k, v in failed.items()])


def headline(res: dict, pg: Page) -> list:
    acc, sp, sim = res.get("accuracy"), res.get("speed"), res.get("sim")
    rows = []
    if acc:
        for arith, name in (("float", "float golden"), ("fixed", "fixed-point golden"), ("rtl", "RTL (Verilator)")):
            if acc.get(arith):
                rows.append([f"test error, {name} ({acc['train_samples']:,} training samples, "
                             f"{len(acc['seeds'])} seed{'s' if len(acc['seeds']) > 1 else ''})",
                             spread(acc[arith]["test_error"])])
        if acc.get("rtl"):
            rows.append(["RTL bit-exact with the fixed-point golden", "yes" if acc["rtl"]["bit_exact"] else "**NO**"])
    if sp:
        c = sp["cycles"]
        rows.append(["cycles / training sample (schedule, ideal bound)",
                     f"{c['schedule']['total']:,.1f}, {c['ideal']['total_ceil']:,.1f} ({100 * c['efficiency']:.1f}%)"])
        for b in sp["boards"]:
            x = b.get("fmax") or b.get("target")
            if x:
                rows.append([f"{b['board']}: samples/s at {x['mhz']:.1f} MHz "
                             f"({'Fmax' if b.get('fmax') else 'target clock, not measured'})",
                             f"{num(x['samples_per_s'])} ({x['us_per_sample']:.1f} us/sample, {x['bound']}-bound)"])
        t = (sp.get("torch") or {}).get("runs", {})
        if "1" in t:
            rows.append(["torch float EP on this CPU, batch 1", f"{num(t['1']['samples_per_s']['mean'])} samples/s"])
        ref = next((r for r in compare(sp) if r["kind"] in ("fmax", "target")), None)
        if ref:
            for p in published().on_chip_learners[:2]:
                rows.append([f"{p['system'].split(' (')[0]}: its time per sample / eqfpga core's at "
                             f"{ref['mhz']:.1f} MHz ({'Fmax' if ref['kind'] == 'fmax' else 'target clock'})",
                             f"{1e6 * p['s_per_sample'] / ref['us_per_sample']:.3g}"])
    if sim:
        m = sim["modes"]
        rows.append(["Verilator, RTL alone", f"{si(m['rtl_alone']['sim_cycles_per_s'], 'cycles/s')}, "
                     f"{m['rtl_alone']['samples_per_s']:.0f} samples/s"])
    if not rows:
        return []
    return ["", f"## Headline{pg.q}", "", table(["figure", "value"], rows), "", pg.by]


def accuracy_section(acc: dict, pg: Page) -> list:
    L = ["", f"## 1. Accuracy{pg.q}", "",
         f"Net {acc['config']} ({'-'.join(map(str, acc['sizes']))}), 1 epoch on the first "
         f"{acc['train_samples']:,} training images, test error on the first {acc['test_images']:,} "
         f"test images; seeds {acc['seeds']} (`cfg.replace(seed=s)`: initial weights, sample order, "
         "stochastic rounding). Mean ± sample standard deviation (min-max)."]
    rows = []
    for arith, name, how in (("float", "float golden", "`Trainer` arith float, float32, batch 1"),
                             ("fixed", "fixed-point golden", "`Trainer` arith fixed (the hardware's arithmetic)"),
                             ("rtl", "RTL-trained", "`verify(cfg, test=...)`: bit-exact training in Verilator, "
                                                    "then inference on the RTL")):
        a = acc.get(arith)
        if not a:
            continue
        per = ", ".join(pct(r["test_error"]) for r in a["runs"])
        rows.append([name, how, spread(a["test_error"]), per, spread(a["samples_per_s"], False, 0)])
    L += ["", table(["model", "how", "test error", "per seed", "training samples/s"], rows), "", pg.by]
    if acc.get("rtl"):
        r = acc["rtl"]
        mism = sum((x["prediction_mismatches"] or 0) for x in r["runs"])
        same = all(x["test_error"] == y["test_error"] for x, y in zip(r["runs"], acc["fixed"]["runs"]))
        L += ["", f"Bit-exact: **{'yes' if r['bit_exact'] else 'NO'}** for every seed (checksum of all "
              f"weights after every sample, full comparison every 1,000); RTL test predictions that differ "
              f"from FixedEP's: {mism}. The RTL-alone training curve (seed {r['curve_run']['seed']}) ends at "
              f"{pct(r['curve_run']['test_error'])}, "
              f"{'the same as' if r['curve_run']['same_as_verify'] else 'DIFFERENT from'} the verified run. "
              "The RTL trains on the same images in the same order as the fixed-point golden of each seed "
              "(`Trainer`'s seeded order), so its test error must equal the fixed golden's: "
              + ("it does for every seed." if same else "**it does not for every seed** (see benchmarks.json).")]
    L += ["", "![training curves](bench-curves.png)", "", pg.by, "",
          "Published EP figures (EP-NOTES.md; not produced by this run, for comparison: larger nets, "
          "float arithmetic, many epochs):", "",
          table(["paper", "net", "test error (%)", "notes"],
                [[p["paper"], p["net"], p["test_error_pct"], p["notes"]] for p in published().ep_accuracy])]
    return L


def precision_section(pr: dict, pg: Page) -> list:
    return ["", f"### Precision study{pg.q}", "",
            f"Fixed-point {pg.meta['config']['name']} with the weight width (and biases in the same format) and the "
            f"update rounding varied, {pr['nets']} nets side by side on the same first {pr['train_samples']:,} "
            f"training images (1 epoch), test error on the first {pr['test_samples']:,} test images "
            f"({pr['net_samples_per_s']:.0f} net-samples/s):", "", study_table(pr).strip(), "", pg.by, "",
            "![precision study](bench-precision.png)", "", pg.by]


def speed_section(sp: dict, pg: Page) -> list:
    return (cycles_part(sp, pg) + boards_part(sp, pg) + torch_part(sp, pg) + baselines_part(sp, pg)
            + macs_part(sp, pg) + cups_part(sp, pg))


def cycles_part(sp: dict, pg: Page) -> list:
    c = sp["cycles"]
    rows = [[k, num(c["schedule"][k], 1), num(c["ideal"][k], 1),
             num(c["macs"].get(k), 0) if k in c["macs"] else "-"] for k in PHASES]
    rows.append(["**total**", f"**{num(c['schedule']['total'], 1)}**",
                 f"**{num(c['ideal']['total_ceil'], 1)}** ({100 * c['efficiency']:.1f}%)", num(c["macs"]["total"])])
    L = ["", f"## 2. Speed{pg.q}", "",
         f"Cycles of one training sample of {sp['config']} (P = {sp['P']}), by phase, from the "
         f"controller's schedule (`eqfpga.hdl.plan.Plan`), averaged over the non-zero pixel counts of "
         f"all {c['images']:,} training images (mean {c['mean_nnz']:.1f}); the ideal bound is P products "
         "a cycle (zero pixels skipped).", "",
         table(["phase", "cycles (schedule)", "ideal bound", "products (MACs)"], rows), "", pg.by]
    if sp.get("rtl_cycles"):
        rc = sp["rtl_cycles"]
        L += ["", f"The RTL's own cycle counter over the first {rc['images']:,} training images: "
              f"{spread(rc['measured'], False, 1)} cycles/sample (plan for the same images: "
              f"{rc['plan_same_images']:,.1f}). {pg.by}"]
    return L + ["", "![cycles by phase](bench-cycles.png)", "", pg.by]


def boards_part(sp: dict, pg: Page) -> list:
    lk = sp["link"]
    L = ["", f"Boards. Compute bound = Fmax / cycles per sample; link bound = baud / (10 bits x "
         f"{lk['request_bytes_mean']:.1f} bytes of a TRAIN request, mean over {lk['images']:,} images, "
         f"pixels coded by {lk['encoder']}); the link overlaps compute (2 requests in flight), so a "
         "board runs at the lower of the two."]
    rows = []
    for b in sp["boards"]:
        res_ = b.get("resources") or {}
        rtxt = ", ".join(f"{k} {v}" for k, v in res_.items() if v is not None and k in
                         ("LUT4", "TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "ICESTORM_LC", "SB_MAC16"))
        for tag in ("fmax", "target"):
            x = b.get(tag)
            if not x:
                continue
            src = (f"Fmax from {b['fmax_source']}" if tag == "fmax" else "target clock (not measured)")
            built = (f"read from `{b['source']}` ({b['report_date']}, written by `eqfpga build`, not by this run"
                     + ("" if b.get("fresh", True) else "; older than hdl/") + ")") if b["built"] else "not built in this run"
            rows.append([b["board"], built,
                         rtxt or "-", f"{x['mhz']:.1f} MHz, {src}",
                         f"{x['compute_us_per_sample']:.1f} us, {num(x['compute_samples_per_s'])}/s",
                         f"{b['baud'] / 1e6:g} Mbaud: {num(b['link_samples_per_s'])}/s",
                         f"**{num(x['samples_per_s'])}/s** ({x['bound']})"])
        if not b.get("fmax") and not b.get("target"):
            why = f"does not fit: {b['precheck']}" if b.get("fits") is False else "-"
            rows.append([b["board"], "not built in this run", why, "-", "-", "-", "-"])
    L += ["", table(["board", "build", "resources", "clock", "compute bound", "link bound", "samples/s"], rows), "", pg.by]
    cs = sp.get("core_synth")
    if cs:
        L += ["", (f"Core synthesis report used where no board was built: `{cs['path']}` ({cs['status']}, "
                   f"{cs['date']}; read, not re-run, by this command)." if cs["fresh"] else
                   f"A core synthesis report exists (`{cs['path']}`, {cs['date']}, Fmax {cs['fmax_mhz']} MHz) but "
                   "it is older than the current hdl/ sources, so it may describe an older core: not used.")]
    return L


def torch_part(sp: dict, pg: Page) -> list:
    t = sp.get("torch")
    if not t:
        return []
    rows = [[f"batch {r['batch']}", r["samples"], spread(r["samples_per_s"], False, 0),
             f"{r['us_per_sample']:.1f}", si(r["cups"], "CUPS")] for r in t["runs"].values()]
    return ["", f"torch float EP training on this CPU (`FloatEP.train_batch`, float32, {t['threads']} thread, "
            f"{t['repeats']} repeats: mean ± std (min-max)):", "",
            table(["run", "samples", "samples/s", "us/sample", "CUPS"], rows), "", pg.by]


def _reference(sp: dict):
    """The first eqfpga row of ``compare``: the reference of the time ratios."""
    return next((r for r in compare(sp) if r["kind"] in ("fmax", "target")), None)


def baselines_part(sp: dict, pg: Page) -> list:
    cmp_rows = compare(sp)
    ref = next((r for r in cmp_rows if r["kind"] in ("fmax", "target")), None)
    rows = []
    for r in cmp_rows:
        ratio = (f"{r['us_per_sample'] / ref['us_per_sample']:.3g}x" if ref else "-")
        name = r["system"] + (" **(ref)**" if r is ref else "")
        rows.append([name, f"{r['us_per_sample']:,.1f}", num(r["samples_per_s"]), si(r["cups"], "CUPS"), ratio])
    return ["", "Against the baselines (time per training sample; the ratio is that system's time over eqfpga's "
            "row marked (ref), so > 1 means eqfpga is faster). Published systems train other nets (as listed) with "
            "backprop or DRTP; their CUPS are connections x samples/s derived from the published time.", "",
            table(["system", "us / sample", "samples/s", "CUPS", "time ratio"], rows), "", pg.by]


def macs_part(sp: dict, pg: Page) -> list:
    c, m, ref = sp["cycles"], sp["multipliers"], _reference(sp)
    mac_abs = ""
    if ref:
        mac_abs = (f" At {ref['mhz']:.1f} MHz ({'Fmax' if ref['kind'] == 'fmax' else 'target clock'}) that is "
                   f"{si(c['macs']['total'] * ref['samples_per_s'], 'MAC/s')} in all "
                   f"({c['macs']['total']:,.0f} MACs per training sample).")
    return ["", f"Multiply-accumulates per multiplier per clock (achieved MACs / (multipliers x clock), "
            f"independent of the clock): **{sp['macs_per_multiplier_per_cycle']:.3f}** over all {m['total']} "
            f"multipliers (one a lane, {m['mac']['width']}, the update's products included); "
            f"{sp['macs_per_mac_lane_per_cycle']:.3f} per MAC lane"
            + (f"; {sp['macs_per_dsp_block_per_cycle']:.3f} per MULT18X18D block of the synthesis report"
               if sp.get("macs_per_dsp_block_per_cycle") else "") + f".{mac_abs} {pg.by}"]


def cups_part(sp: dict, pg: Page) -> list:
    rbm = [[r["system"] + " (published)", r["net"], si(r["cups"], "CUPS"), f"{r['clock_mhz']} MHz"]
           for r in published().rbm_trainers]
    rbm += [[r["system"] + " (this run)", "-".join(map(str, sp["sizes"])), si(r["cups"], "CUPS"),
             f"{r['mhz']:.1f} MHz" if r.get("mhz") else "-"]
            for r in compare(sp) if r["kind"] in ("fmax", "target")]
    cfg = pg.meta["config"]
    return ["", "Connection updates per second next to the RBM contrastive-divergence FPGA trainers (EP-NOTES.md; "
            "CD-1 costs about 3 matrix-vector passes per update, EP here T1 + T2 = "
            f"{cfg['T1'] + cfg['T2']} relaxation steps, so compare also the MACs per "
            "multiplier per clock above):", "",
            table(["system", "net", "CUPS", "clock"], rbm), "", pg.by,
            "", f"**{ENERGY_NOTE}**"]


def simulation_section(sim: dict, res: dict, pg: Page) -> list:
    m = sim["modes"]
    names = {"rtl_alone": "RTL alone (no checksum)", "rtl_checksum": "RTL + checksum of all weights after every sample",
             "verify_check_1000": "verify: RTL + FixedEP + checksums, full check every 1,000",
             "verify_check_50": "verify: the same, full check every 50"}
    rows = [[names[k], num(v["samples_per_s"], 1), si(v.get("sim_cycles_per_s"), "cycles/s"),
             f"{v['slowdown_vs_rtl_alone']:.2f}x"] for k, v in m.items()]
    L = ["", f"## 3. Simulation throughput{pg.q}", "",
         f"{sim['simulator']}. Cost of bit-exact checking, all modes on the same "
         f"first {sim['samples']:,} training images from the same initial weights:", "",
         table(["mode", "samples/s", "simulated cycles/s", "time vs RTL alone"], rows), "", pg.by, "",
         f"Bit-exact checking costs {m['verify_check_1000']['slowdown_vs_rtl_alone']:.2f}x the RTL's own time: "
         "verify runs the golden FixedEP on the other core while the harness simulates, so the slower of "
         "the two sets the pace; the C++ checksum after every sample costs "
         f"{100 * (m['rtl_checksum']['slowdown_vs_rtl_alone'] - 1):.0f}%."]
    ar = sim.get("accuracy_runs")
    if ar:
        ns = len(res["accuracy"]["seeds"])
        L += ["", f"In the accuracy runs (verify, {ns} seed{'s' if ns > 1 else ''}): "
              f"{spread(ar['sim_cycles_per_s'], False, 0)} simulated cycles/s while training, "
              f"{spread(ar['samples_per_s'], False, 1)} samples/s; RTL inference "
              f"{spread(ar['test_sim_cycles_per_s'], False, 0)} cycles/s. The fixed-point golden alone: "
              f"{spread(sim['golden_fixed_samples_per_s'], False, 0)} samples/s. {pg.by}"]
    return L


def scaling_section(sc: dict, pg: Page) -> list:
    rows = [["-".join(map(str, r["sizes"])), r["P"], num(r["cycles"], 1), num(r["ideal"], 1),
             f"{100 * r['efficiency']:.1f}%", num(r["memory_bits"]), r["multipliers"], r["mult18x18d_estimate"],
             r["weight_dp16kd_min"], "yes" if r["fits_LFE5U-85F"] else "no",
             num(r.get("LUT4_estimate")), num(r.get("fmax_estimate_mhz"), 1)]
            for r in sc["vs_hidden"] + sc["vs_P"]]
    L = ["", f"## 4. Scaling{pg.q}", "",
         f"From the plan (exact, no synthesis): cycles per training sample (mean over MNIST's non-zero "
         f"pixel counts, mean {sc['nnz_mean']:.1f}), memory bits allocated, multipliers and the ECP5-85F "
         "block RAM bound, vs hidden size (P fixed) and vs P (hidden fixed). LUT4 and Fmax are estimates "
         "(last two columns, see below).", "",
         table(["sizes", "P", "cycles", "ideal", "efficiency", "memory bits", "multipliers", "MULT18X18D",
                "DP16KD (W, min)", "fits 85F", "LUT4 (est.)", "Fmax MHz (est.)"], rows), "", pg.by]
    L += synthesised_part(sc, pg) + check_part(sc, pg)
    for e in sc.get("synth_errors") or []:
        L += ["", f"Synthesis of {e['config']} failed in this run: `{e['error'][:300]}`"]
    if not sc["synth_points"]:
        L += ["", "No configuration was synthesised in this run (no cached report, or the synthesis tools are "
              "absent: `pip install -e .[boards]`), so LUT4 and Fmax have no estimate."]
    return L + ["", "![scaling](bench-scaling.png)", "", pg.by]


def synthesised_part(sc: dict, pg: Page) -> list:
    pts = sc["synth_points"]
    if not pts:
        return []
    rows = [[s["config"], "-".join(map(str, s["sizes"])), s["P"], num(s["LUT4"]), num(s["TRELLIS_FF"]),
             s["MULT18X18D"], s["DP16KD"], num(s["fmax_mhz"], 1) + ("" if s["routed"] else " (placed, estimate)"),
             s["made"]] for s in pts]
    f = sc["fit"]
    L = ["", "Synthesised points (`eqfpga.bench.synthesis.synth_point`: the core build, LFE5U-85F, "
         "yosys + nextpnr-ecp5):", "",
         table(["config", "sizes", "P", "LUT4", "FF", "MULT18X18D", "DP16KD", "Fmax MHz", "made"], rows), "", pg.by]
    if f.get("a") is not None:
        loo = ", ".join(f"{100 * e:+.1f}%" for e in f["loo_rel_errors"]) or "-"
        L += ["", f"Estimate for the other points: {f['model']} with a = {f['a']:.0f}, b = {f['b']:.1f} "
              f"(least squares over {f['points']} points); its error, each synthesised point predicted from "
              f"the others: {loo}; Fmax taken as the median {f['fmax_mhz']:.1f} MHz of the synthesised "
              f"points (they spread by ±{100 * f['fmax_rel_spread']:.0f}%). The small points keep their "
              "memories in LUT RAM and the large ones in block RAM, so the LUT estimate is rough beyond "
              f"the synthesised range. {pg.by}"]
    return L


def check_part(sc: dict, pg: Page) -> list:
    ck = sc.get("check")
    if not ck:
        return []
    return ["", f"Check of the estimate against a synthesis of {'-'.join(map(str, ck['sizes']))}, P = {ck['P']} "
            f"(`{ck['source']}`, {ck['made']}{'' if ck['fresh'] else '; older than the current hdl/, so it may describe an older core'}): "
            f"LUT4 {num(ck['LUT4'])} synthesised vs {num(ck['LUT4_estimate'])} estimated "
            f"({pct(ck['LUT4_rel_error'], 0) if ck['LUT4_rel_error'] is not None else '-'} error); Fmax "
            f"{ck['fmax_mhz']:.1f} MHz vs {ck['fmax_estimate_mhz']:.1f} MHz estimated "
            f"({pct(ck['fmax_rel_error'], 0)} error). {pg.by}"]


def reproduce(pg: Page) -> list:
    return ["", "## How to reproduce", "", f"`{pg.cmd}` (writes this page, `benchmarks.json` and the `bench-*.png` "
            f"plots). Duration of this run: {pg.meta.get('duration_s', 0):.0f} s" + (" (quick)." if pg.quick else ".")]
