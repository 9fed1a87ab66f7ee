"""cocotb test: the core against the golden FixedEP, compared with equality, never a tolerance.

Driven by a JSON plan (env ``EQFPGA_TEST_PLAN``, written by ``eqfpga.sim.runner.run``) and the
golden expectations computed beforehand (``eqfpga.sim.expect``, path in the plan; ``core_seed``:
the seed port's value, default the config's seed, and the golden model's seed): initial
parameters, samples, predictions, states after each phase, final parameters and counters. The plan
may ``mutate`` ([layer, i, j, bit]: flip one weight bit in the RTL through the access port). The
report (``report`` path) names the first value that differs: state, prediction, weight, bias,
counter or cycle count. No torch here: the simulator's embedded Python imports it slowly.
"""
import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock

from .compare import first_param_diff, first_state_diff
from .core_driver import CoreDriver


def _describe(diff):
    return None if diff is None else str(diff)


def _changed(a, b):
    """Fraction of the weights (biases apart) that training changed."""
    (W0, _), (W1, _) = a, b
    n = sum(x != y for M0, M1 in zip(W0, W1) for r0, r1 in zip(M0, M1) for x, y in zip(r0, r1))
    return n / sum(len(r) for M in W0 for r in M)


class _Cfg:
    """The little of the config the driver needs (no EPConfig: keeps this module light)."""

    def __init__(self, d, seed):
        self.sizes = tuple(d["sizes"])
        self.weight_bits = d["fixed"]["weight_bits"]
        self.seed = seed


@cocotb.test()
async def core_matches_golden(dut):
    plan = json.loads(Path(os.environ["EQFPGA_TEST_PLAN"]).read_text())
    exp = json.loads(Path(plan["expect"]).read_text())
    seed = plan.get("core_seed")
    cfg = _Cfg(plan["cfg"], plan["cfg"]["seed"] if seed is None else seed)
    rep = {"mismatches": [], "samples": [], "core_seed": cfg.seed}

    def mismatch(msg):
        if msg:
            rep["mismatches"].append(msg)
            dut._log.error(msg)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    drv = CoreDriver(dut, cfg)
    await drv.reset()

    init = exp["init"]
    await drv.load_params(*init)
    if plan.get("mutate"):
        n, i, j, bit = plan["mutate"]
        v = await drv.read_weight(n, i, j)
        wb = cfg.weight_bits
        flipped = (v & ((1 << wb) - 1)) ^ (1 << bit)
        flipped -= (1 << wb) if flipped >> (wb - 1) else 0
        await drv.write_weight(n, i, j, flipped)
        rep["mutated"] = f"W{n}[{i}][{j}] bit {bit}: {v} -> {flipped}"
    rep["first_param_diff_after_load"] = _describe(first_param_diff(await drv.read_params(), init))
    mismatch(rep["first_param_diff_after_load"] and f"after load: {rep['first_param_diff_after_load']}")

    await drv.set_t(int(plan.get("t0", 0)))
    for k, smp in enumerate(exp["samples"], start=1):
        c0 = await drv.counters()
        pred = await drv.run_sample(smp["x"], smp["label"], learn=smp["learn"])
        c1 = await drv.counters()
        kind = "training" if smp["learn"] else "inference"
        rep["samples"].append({"learn": smp["learn"], "pred": pred, "cycles": c1["cycles"] - c0["cycles"],
                               "schedule": smp["cycles"], "sign": smp.get("sign")})
        if pred != smp["pred"]:
            mismatch(f"{kind} sample {k}: prediction {pred} != golden {smp['pred']}")
        rep["samples"][-1]["states"] = {}
        for phase, gold in smp["states"].items():
            hw_states = rep["samples"][-1]["states"][phase] = await drv.read_states(phase)
            d = first_state_diff(hw_states, gold)
            mismatch(d and f"{kind} sample {k} {phase} s{d.layer}[{d.index}]: hardware {d.rtl} != golden {d.golden}")
        if c1["cycles"] - c0["cycles"] != smp["cycles"]:
            mismatch(f"sample {k}: {c1['cycles'] - c0['cycles']} cycles != schedule {smp['cycles']}")

    hw = await drv.read_params()
    rep["first_param_diff"] = _describe(first_param_diff(hw, exp["final"]))
    mismatch(rep["first_param_diff"] and f"after training: {rep['first_param_diff']}")
    rep["weights_changed"] = _changed(init, exp["final"])

    hc = await drv.counters()
    gc = exp["counters"]
    rep["counters"], rep["golden_counters"] = hc, gc
    expect = {k: gc[k] for k in ("update_sat", "weight_sat", "bias_sat", "act_low", "act_high", "unsettled",
                                 "cycling")}
    expect["t"] = exp["t"]
    expect["samples"] = len(exp["samples"])
    for k, v in expect.items():
        if hc[k] != v:
            mismatch(f"counter {k}: hardware {hc[k]} != golden {v}")
    per = await drv.read_layer_counters()
    rep["layer_counters"] = per
    for name, values in per.items():
        if values != exp["layer_counters"][name]:
            mismatch(f"per-layer counter {name}: hardware {values} != golden {exp['layer_counters'][name]}")
    with open(plan["report"], "w") as fh:
        json.dump(rep, fh, indent=1)
    if not plan.get("mutate"):
        assert not rep["mismatches"], rep["mismatches"][0]
