"""Generate the core's Verilog for a config, with a resource and schedule report.

``generate(cfg, out_dir)`` writes ``<out_dir>/eqfpga_top.v`` (``CORE_TOP``, amaranth.back.verilog) and
``<out_dir>/report.json``, prints a table and returns the report. It refuses, with the error of
``EPConfig.check_hardware`` naming the field, every config the gateware cannot run. The
top's ports are listed in ``eqfpga.hdl.core``'s docstring.

Top ports (Verilog names; streams are ``<name>__payload/__valid/__ready``; full table in
``eqfpga.hdl.core``): ``clk``, ``rst``; ``sample`` (in: pixels then label), ``learn``; ``result``
(out: prediction); ``access`` / ``access_rsp`` (read/write every weight and bias, read states);
``t_set``, ``t_value``, ``t``; ``seed`` (in: the random source's seed, a runtime value: the Verilog
is the same for every seed); ``busy``; counters ``cycles``, ``samples``, ``update_sat``,
``weight_sat``, ``bias_sat``, ``act_low``, ``act_high``, ``unsettled``, ``cycling``. The report
lists them with their widths (``ports``).

The report counts memory bits (allocated, lanes included), multipliers, an estimate of flip-flops
(the registers of the generated Verilog, memories excluded) and the cycles of one sample from the
controller's schedule, next to the ideal bound of P products a cycle; and, for each FPGA family,
the resource estimate of ``eqfpga.hdl.resources`` (block RAMs, DSP blocks, logic) that the
build's pre-check uses.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from eqfpga.golden.config import ConfigError, EPConfig, load_config

from . import resources
from .core import EPCore
from .plan import Plan

CORE_TOP = "eqfpga_top"     # the core's Verilog module (and file) name
# Amaranth's Verilog extends and truncates operands implicitly and leaves `casez` without a default
# (every signal has a default assignment before it): legal, intended, and flagged by Verilator's
# style lints. Waived in the file itself so that a plain `verilator --lint-only` passes.
LINT_WAIVERS = ("/* verilator lint_off WIDTHEXPAND */\n/* verilator lint_off WIDTHTRUNC */\n"
                "/* verilator lint_off CASEINCOMPLETE */\n")
DEFAULT_NNZ = 150       # average non-zero pixels of an MNIST digit, used when no data is given


def check_hardware(cfg: EPConfig) -> None:
    """Raise ConfigError unless the hardware implements this config (fixed-point rules first)."""
    if not isinstance(cfg, EPConfig):
        raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
    cfg.check_hardware()
    if cfg.fixed.weight_bits > 32 or cfg.fixed.bias_bits > 32:
        raise ConfigError(f"config field 'fixed.weight_bits' = {cfg.fixed.weight_bits!r} is invalid: "
                          "the access port carries at most 32 bits")


def memory_bits(cfg: EPConfig) -> dict:
    """Bits of every memory of the core as allocated (lanes included), their total, and the bits
    the weights and biases need."""
    f, N = cfg.fixed, cfg.n_layers
    out = {k: w * d * n for k, (w, d, _, n) in resources.memory_map(cfg).items()}
    out["total"] = sum(out.values())
    out["weights_and_biases_needed"] = sum(
        cfg.sizes[n] * cfg.sizes[n + 1] * f.weight_bits + cfg.sizes[n + 1] * f.bias_bits for n in range(N))
    return out


def multipliers(cfg: EPConfig, train: bool = True) -> dict:
    """Count and operand widths of the multipliers: one a lane, shared by the relaxation's products
    and (``train``) the update's."""
    (mac,) = resources.multipliers(cfg, train=train)
    return {"mac": {"count": mac.count, "width": mac.width}, "total": mac.count,
            "shared_by_update": bool(train)}


def register_bits(text: str) -> int:
    """Flip-flop bits of the generated Verilog: targets of posedge blocks, memories excluded."""
    widths, memories = {}, set()
    for mt in re.finditer(r"^\s*reg\s+(?:\[(\d+):(\d+)\]\s+)?(\\?\S+)\s*(\[[^\]]*\])?", text, re.M):
        hi, lo, name, dims = mt.groups()
        if dims:
            memories.add(name)
        widths[name] = (int(hi) - int(lo) + 1) if hi is not None else 1
    regs = set()
    for blk in re.finditer(r"always @\(posedge clk\)(.*?)\n  end\n", text, re.S):
        for mt in re.finditer(r"^\s*(\\?[^\s\[]+)\s*(?:\[[^\]]*\])*\s*<=", blk.group(1), re.M):
            if mt.group(1) not in memories:
                regs.add(mt.group(1))
    return sum(widths.get(r, 1) for r in regs)


def port_list(core) -> list:
    """[(Verilog name, "in"/"out", width)] of the top, clock and reset first."""
    out = [("clk", "in", 1), ("rst", "in", 1)]
    for path, member, value in core.signature.flatten(core):
        out.append(("__".join(str(p) for p in path), "in" if member.flow == wiring.In else "out",
                    Shape.cast(member.shape).width))
    return out


def schedule(cfg: EPConfig, nnz: int, train_unit: bool = True) -> dict:
    pl = Plan(cfg)
    train = pl.sample_cycles(nnz, learn=True)
    infer = pl.sample_cycles(nnz, learn=False)
    if not train_unit:
        return {"nonzero_pixels": nnz, "infer_cycles": infer["total"], "infer_parts": infer,
                "ideal_infer_cycles": pl.ideal_cycles(nnz, learn=False)}
    return {
        "nonzero_pixels": nnz,
        "train_cycles": train,
        "infer_cycles": infer["total"],
        "ideal_train_cycles": pl.ideal_cycles(nnz, learn=True),
        "ideal_infer_cycles": pl.ideal_cycles(nnz, learn=False),
        "train_efficiency": round(pl.ideal_cycles(nnz, learn=True) / train["total"], 3),
        "products_per_multiplier_cycle": round(pl.mac_utilisation(nnz, learn=True), 3),
    }


def nnz_counts(images):
    """Non-zero pixels of each image (rows of pixels: lists, numpy or torch), as a numpy array."""
    import numpy as np
    a = np.asarray(images)
    if a.ndim < 2 or a.shape[0] == 0:
        raise ValueError("images must hold at least one row of pixels")
    return np.count_nonzero(a.reshape(a.shape[0], -1), axis=1)


def average_nnz(images) -> int:
    """Average count of non-zero pixels of ``images``, rounded."""
    return round(float(nnz_counts(images).mean()))


def mean_schedule(cfg: EPConfig, counts) -> dict:
    """Training cycles and the ideal bound averaged over images with these non-zero pixel counts."""
    import numpy as np
    pl = Plan(cfg)
    values, freq = np.unique(counts, return_counts=True)
    n = int(freq.sum())
    cyc = sum(pl.sample_cycles(int(v), learn=True)["total"] * int(f) for v, f in zip(values, freq)) / n
    ideal = sum(pl.ideal_cycles(int(v), learn=True) * int(f) for v, f in zip(values, freq)) / n
    prods = sum(pl.products(int(v), learn=True) * int(f) for v, f in zip(values, freq)) / n
    return {"images": n, "train_cycles": round(cyc, 2), "ideal_train_cycles": round(ideal, 2),
            "train_efficiency": round(ideal / cyc, 4),
            "products_per_multiplier_cycle": round(prods / (pl.P * cyc), 4)}


def generate(cfg, out_dir, *, nnz: int | None = None, images=None, weights=None, biases=None,
             train: bool = True, quiet: bool = False) -> dict:
    """Write the Verilog and report of ``cfg`` (an EPConfig or a preset name) into ``out_dir``.

    ``nnz``: average non-zero input pixels for the cycle count, or ``images`` to measure it on;
    with neither, 150 (an MNIST average; the report says which). ``weights`` / ``biases``: optional initial memory contents.
    ``train=False``: the inference-only core (no update unit; training cycles are not reported).
    """
    cfg = load_config(cfg)
    check_hardware(cfg)
    if images is not None:
        if nnz is not None:
            raise ValueError("give nnz or images, not both")
        counts = nnz_counts(images)
        nnz = round(float(counts.mean()))
        given = f"measured on {len(counts)} images"
    else:
        given = "given"
    if nnz is not None and not (isinstance(nnz, int) and 0 <= nnz <= cfg.sizes[0]):
        raise ValueError(f"nnz must be an integer from 0 to {cfg.sizes[0]}, not {nnz!r}")
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    core = EPCore(cfg=cfg, weights=weights, biases=biases, train=train)
    ports = port_list(core)
    text = LINT_WAIVERS + verilog.convert(core, name=CORE_TOP)
    (out / f"{CORE_TOP}.v").write_text(text)
    used_nnz = DEFAULT_NNZ if nnz is None else nnz
    if nnz is not None:
        source = given
    elif cfg.sizes[0] >= DEFAULT_NNZ:
        source = f"assumed average of {DEFAULT_NNZ} non-zero pixels (no data given)"
    else:
        used_nnz = cfg.sizes[0]
        source = f"assumed all {used_nnz} pixels non-zero (no data given, fewer than {DEFAULT_NNZ} inputs)"
    report = {
        "config": cfg.to_dict(),
        "verilog": str(out / f"{CORE_TOP}.v"),
        "parallelism": cfg.parallelism,
        "memory_bits": memory_bits(cfg),
        "train": train,
        "ports": ports,
        "multipliers": multipliers(cfg, train),
        "register_bits_estimate": register_bits(text),
        "schedule": schedule(cfg, used_nnz, train),
        "nnz_source": source,
        "fpga_estimate": {fam: resources.estimate(cfg, fam, train=train).to_dict() for fam in resources.FAMILIES},
    }
    if images is not None and train:
        report["schedule"]["mean_over_images"] = mean_schedule(cfg, counts)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if not quiet:
        print(format_table(report))
    return report


def format_table(r: dict) -> str:
    s, mb = r["schedule"], r["memory_bits"]
    rows = [
        ("config", r["config"]["name"] + " " + "-".join(map(str, r["config"]["sizes"]))),
        ("parallelism P", r["parallelism"]),
        ("memory bits (allocated)", f"{mb['total']:,}"),
        ("  of which W, b needed", f"{mb['weights_and_biases_needed']:,}"),
        ("multipliers", f"{r['multipliers']['total']} (one a lane, {r['multipliers']['mac']['width']}"
                        f"{', shared by the update' if r['multipliers']['shared_by_update'] else ''})"),
        ("registers (estimate, bits)", f"{r['register_bits_estimate']:,}"),
        *[(f"{fam} estimate", f"{t['weight_blocks']} {t['block_ram']} for the weights ({t['memory_blocks']} for "
                              f"every memory), {t['dsp_blocks']} {t['dsp']}, ~{t['logic']:,} {t['logic_unit']}")
          for fam, t in ((fam, e["totals"]) for fam, e in r["fpga_estimate"].items())],
        ("non-zero pixels", f"{s['nonzero_pixels']} ({r['nnz_source']})"),
    ]
    if "train_cycles" in s:
        rows.append(("cycles / training sample", f"{s['train_cycles']['total']:,} (ideal {s['ideal_train_cycles']:,}, "
                                                 f"efficiency {s['train_efficiency']:.0%})"))
        m = s.get("mean_over_images")
        if m:
            rows.append((f"  mean over the {m['images']} images", f"{m['train_cycles']:,.1f} (ideal "
                         f"{m['ideal_train_cycles']:,.1f}, efficiency {m['train_efficiency']:.1%}, "
                         f"{m['products_per_multiplier_cycle']:.3f} products a multiplier a cycle)"))
    else:
        rows.append(("training", "not built (inference-only core)"))
    rows.append(("cycles / inference sample", f"{s['infer_cycles']:,} (ideal {s['ideal_infer_cycles']:,})"))
    for k, v in s.get("train_cycles", s.get("infer_parts", {})).items():
        if k != "total":
            rows.append((f"  {k}", f"{v:,}"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
