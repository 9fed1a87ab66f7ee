"""Section 2, speed: cycles per training sample against the ideal bound, the RTL's own cycle
counter, samples/s of each board (compute- and link-bound), torch float EP on this CPU, the
published on-chip learners, CUPS and multiply-accumulates per multiplier per clock."""
from __future__ import annotations

import time

import numpy as np
import torch

from eqfpga.golden.config import load_config
from eqfpga.golden.float_model import FloatEP
from eqfpga.hdl.generate import multipliers
from eqfpga.hdl.protocol import TRAIN_REPLY_BYTES, encode_pixels, train_request_bytes

from .cycles import cycles_by_phase
from .inputs import connections, lsbs, nnz_histogram
from .published import published
from .stats import stats

ENERGY_NOTE = ("Energy is not measured here: no board power was measured in this run, so no "
               "energy per sample is given next to the published uJ/mJ figures.")
UART_BITS_PER_BYTE = 10         # 8N1: start, 8 data bits, stop


def link_bytes(cfg, images, limit: int = 5000) -> dict:
    """Mean bytes of a TRAIN request (host -> board) over the first ``limit`` images, pixels coded
    by the protocol's own encoder."""
    rows = lsbs(images[:limit], cfg)
    pixel = np.array([len(encode_pixels(row, cfg.fixed.input_frac)) for row in rows])
    request = np.array([train_request_bytes(int(n)) for n in pixel])
    return {"images": int(len(pixel)), "pixel_bytes_mean": float(pixel.mean()),
            "request_bytes_mean": float(request.mean()), "reply_bytes": TRAIN_REPLY_BYTES,
            "encoder": "eqfpga.hdl.protocol.encode_pixels", "bits_per_byte": UART_BITS_PER_BYTE}


def torch_speed(cfg, data, *, b1_samples, batched_samples, batches=(20, 100), repeats=5, log=print) -> dict:
    """torch float EP training (FloatEP.train_batch, float32, one thread) on this CPU: samples/s at
    batch 1 (as on chip) and batched, each repeated; the spread over the repeats."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x_all = torch.from_numpy(data.train_images[:max(b1_samples, batched_samples)].astype(np.float32)) / 256.0
        y_all = torch.nn.functional.one_hot(
            torch.from_numpy(data.train_labels[:len(x_all)].astype(np.int64)), cfg.sizes[-1]).float()
        out = {"threads": 1, "dtype": "float32", "repeats": repeats, "runs": {}}
        for B, n in [(1, b1_samples)] + [(b, batched_samples) for b in batches]:
            c = cfg.replace(batch_size=B)
            rates = []
            for _ in range(repeats):
                net = FloatEP(c, torch.float32)
                t0 = time.perf_counter()
                for i in range(0, n - B + 1, B):
                    net.train_batch(x_all[i:i + B], y_all[i:i + B])
                dt = time.perf_counter() - t0
                rates.append((n - n % B) / dt)
            st = stats(rates)
            out["runs"][str(B)] = {"batch": B, "samples": n, "samples_per_s": st,
                                   "us_per_sample": 1e6 / st["mean"],
                                   "cups": connections(cfg) * st["mean"]}
            log(f"  torch float EP, batch {B}: {st['mean']:.0f} samples/s "
                f"(min {st['min']:.0f}, max {st['max']:.0f}, {repeats} repeats)")
    finally:
        torch.set_num_threads(threads)
    return out


def bench_speed(cfg, data, *, boards: list, core_synth: dict | None = None, accuracy=None, log=print) -> dict:
    """Cycles by phase, boards, compute/link bounds, published references, CUPS, MAC/DSP.

    ``boards``: ``reports.board_figures`` of the config; ``core_synth``: ``reports.core_report`` of it
    (a core synthesis stands in for the Fmax of an unbuilt ECP5 board the config fits, when it is
    newer than hdl/). The torch figures are added by the run (they need its sample counts)."""
    cfg = load_config(cfg)
    v, f = nnz_histogram(data.train_images)
    cyc = cycles_by_phase(cfg, v, f)
    res = {"config": cfg.name, "sizes": list(cfg.sizes), "P": cfg.parallelism, "cycles": cyc,
           "multipliers": multipliers(cfg, True), "energy": ENERGY_NOTE}
    if accuracy and accuracy.get("rtl"):
        n = accuracy["train_samples"]
        vv, ff = nnz_histogram(data.train_images[:n])
        res["rtl_cycles"] = {"measured": stats(r["cycles_per_sample"] for r in accuracy["rtl"]["runs"]),
                             "plan_same_images": cycles_by_phase(cfg, vv, ff)["schedule"]["total"],
                             "images": n}
    lb = link_bytes(cfg, data.train_images)
    res["link"] = lb
    res["core_synth"] = synth = core_synth
    cycles = cyc["schedule"]["total"]
    work = cyc["macs"]["total"]
    mults = res["multipliers"]["total"]
    for b in boards:
        fmax, fsrc = b["fmax_mhz"], "board build report"
        if fmax is None and synth and synth["fresh"] and b.get("fits", True) and b.get("family") == "ecp5":
            # a core synthesis stands in for the board build only if it is newer than hdl/ (an older
            # report may describe another core: reported, not used), the config fits the board and
            # the board is an ECP5, the family the core synthesis targets
            fmax, fsrc = synth["fmax_mhz"], f"core synthesis {synth['path']} ({synth['status']})"
        b["fmax_used_mhz"], b["fmax_source"] = fmax, (fsrc if fmax else None)
        link_sps = b["baud"] / (lb["bits_per_byte"] * lb["request_bytes_mean"])
        b["link_samples_per_s"] = link_sps
        b["link_us_per_sample"] = 1e6 / link_sps
        for tag, mhz in (("fmax", fmax), ("target", b.get("clock_mhz"))):
            if not mhz:
                b[tag] = None
                continue
            sps = mhz * 1e6 / cycles
            both = min(sps, link_sps)      # the link overlaps compute (2 requests in flight)
            b[tag] = {"mhz": mhz, "compute_samples_per_s": sps, "compute_us_per_sample": 1e6 / sps,
                      "samples_per_s": both, "us_per_sample": 1e6 / both,
                      "bound": "compute" if sps <= link_sps else "link",
                      "cups": connections(cfg) * both,
                      "macs_per_s": work * both,
                      "macs_per_multiplier_per_clock": work * both / (mults * mhz * 1e6)}
        dsp = b["resources"].get("MULT18X18D") or (synth or {}).get("resources", {}).get("MULT18X18D")
        b["dsp_blocks"] = dsp
    res["boards"] = boards
    res["macs_per_multiplier_per_cycle"] = work / (cycles * mults)     # clock-independent
    res["macs_per_mac_lane_per_cycle"] = work / (cycles * cfg.parallelism)
    if synth and synth["fresh"] and synth["resources"].get("MULT18X18D"):
        res["macs_per_dsp_block_per_cycle"] = work / (cycles * synth["resources"]["MULT18X18D"])
    res["torch"] = None
    res["published_hw"] = list(published().on_chip_learners)
    res["published_rbm"] = list(published().rbm_trainers)
    return res


def compare(speed: dict) -> list:
    """Rows: eqfpga on each board (at Fmax and at the target clock; the core alone, compute-bound,
    and with its serial link), torch on this CPU, the published on-chip learners. The first eqfpga
    row (compute-bound, at Fmax when known) is the reference of the ratios."""
    rows = []
    for b in speed["boards"]:
        for tag in ("fmax", "target"):
            x = b.get(tag)
            if not x:
                continue
            clock = f"{x['mhz']:.1f} MHz " + ("Fmax" if tag == "fmax" else "target clock, not measured")
            rows.append({"system": f"eqfpga {speed['config']}, {b['board']}, {clock}: core alone (compute bound)",
                         "us_per_sample": x["compute_us_per_sample"], "samples_per_s": x["compute_samples_per_s"],
                         "cups": speed["cycles"]["connections"] * x["compute_samples_per_s"], "kind": tag,
                         "bound": "compute", "mhz": x["mhz"]})
            rows.append({"system": f"eqfpga {speed['config']}, {b['board']}, {clock}: with the "
                                   f"{b['baud'] / 1e6:g} Mbaud link", "us_per_sample": x["us_per_sample"],
                         "samples_per_s": x["samples_per_s"], "cups": x["cups"], "kind": tag + "+link",
                         "bound": x["bound"]})
    t = speed.get("torch") or {}
    for B, r in (t.get("runs") or {}).items():
        rows.append({"system": f"torch float EP {speed['config']} on this CPU, batch {B}, 1 thread (measured)",
                     "us_per_sample": r["us_per_sample"], "samples_per_s": r["samples_per_s"]["mean"],
                     "cups": r["cups"], "kind": "cpu", "bound": None})
    for p in published().on_chip_learners:
        rows.append({"system": f"{p['system']}, {p['net']} (published)", "us_per_sample": 1e6 * p["s_per_sample"],
                     "samples_per_s": 1 / p["s_per_sample"],
                     "cups": p["connections"] / p["s_per_sample"] if p["connections"] else None,
                     "kind": "published", "bound": None})
    return rows
