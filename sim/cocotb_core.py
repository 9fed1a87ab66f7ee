"""cocotb test: the core against the golden FixedEP, compared with equality, never a tolerance.

Driven by a JSON plan (env ``EQFPGA_TEST_PLAN``, written by ``eqfpga.sim.runner.run``):
``cfg``, ``train`` (samples to train), ``infer`` (inference samples first), ``t0`` (initial
sample counter), ``seed`` (data), ``zero_frac`` (fraction of zero pixels), ``init_seed``
(optional: large random parameters instead of the config's init), ``mutate`` (optional
[layer, i, j, bit]: flip one weight bit in the RTL through the access port), ``report`` (path).
The report names the first value that differs (state, prediction, weight, bias, counter).
"""
from __future__ import annotations

import json
import os

import cocotb
import numpy as np
import torch
from cocotb.clock import Clock

from eqfpga.golden.config import EPConfig
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.hdl.plan import Plan

from .host import CoreDriver


def _golden_params(g):
    W = [w[0].tolist() for w in g.weights]
    B = [b[0].tolist() for b in g.biases]
    return W, B


def _first_param_diff(hw, gold):
    (hW, hB), (gW, gB) = hw, gold
    for n in range(len(gW)):
        for i, row in enumerate(gW[n]):
            for j, v in enumerate(row):
                if hW[n][i][j] != v:
                    return f"W{n}[{i}][{j}]: hardware {hW[n][i][j]} != golden {v}"
        for i, v in enumerate(gB[n]):
            if hB[n][i] != v:
                return f"b{n}[{i}]: hardware {hB[n][i]} != golden {v}"
    return None


def _first_state_diff(hw, gold, what):
    for k, (h, g) in enumerate(zip(hw, gold), start=1):
        for i, (a, b) in enumerate(zip(h, g)):
            if a != b:
                return f"{what} s{k}[{i}]: hardware {a} != golden {b}"
    return None


@cocotb.test()
async def core_matches_golden(dut):
    plan = json.loads(open(os.environ["EQFPGA_TEST_PLAN"]).read())
    cfg = EPConfig.from_dict(plan["cfg"])
    pl = Plan(cfg)
    rep = {"mismatches": [], "samples": []}

    def save():
        with open(plan["report"], "w") as fh:
            json.dump(rep, fh, indent=1)

    def mismatch(msg):
        if msg:
            rep["mismatches"].append(msg)
            dut._log.error(msg)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    drv = CoreDriver(dut, cfg)
    await drv.reset()

    if plan.get("init_seed") is not None:
        # large random parameters (half the weight range): strongly coupled, the integer
        # dynamics may cycle instead of settling
        f, r = cfg.fixed, np.random.default_rng(plan["init_seed"])
        W = [torch.as_tensor(r.integers(f.weight_min // 2, f.weight_max // 2, size=(1, s[n + 1], s[n])))
             for s in [cfg.sizes] for n in range(cfg.n_layers)]
        B = [torch.as_tensor(r.integers(-(1 << (f.bias_bits - 6)), 1 << (f.bias_bits - 6), size=(1, cfg.sizes[n + 1])))
             for n in range(cfg.n_layers)]
        g = FixedEP(cfg, weights=W, biases=B)
    else:
        g = FixedEP(cfg)
    gold0 = _golden_params(g)
    await drv.load_params(*gold0)
    rep["first_param_diff_after_load"] = None
    if plan.get("mutate"):
        n, i, j, bit = plan["mutate"]
        v = await drv.read_weight(n, i, j)
        wb = cfg.fixed.weight_bits
        flipped = ((v & ((1 << wb) - 1)) ^ (1 << bit))
        flipped -= (1 << wb) if flipped >> (wb - 1) else 0
        await drv.write_weight(n, i, j, flipped)
        rep["mutated"] = f"W{n}[{i}][{j}] bit {bit}: {v} -> {flipped}"
    hw0 = await drv.read_params()
    d = _first_param_diff(hw0, gold0)
    rep["first_param_diff_after_load"] = d
    mismatch(d and f"after load: {d}")

    t0 = int(plan.get("t0", 0))
    await drv.set_t(t0)
    g.samples_seen = t0
    rng = np.random.default_rng(plan.get("seed", 0))
    fx, s = cfg.fixed.input_frac, cfg.sizes

    def draw():
        x = rng.integers(1, 1 << fx, size=s[0])
        x[rng.random(s[0]) < plan.get("zero_frac", 0.4)] = 0
        return x, int(rng.integers(0, s[-1]))

    # inference: prediction and free states, no learning, t unchanged
    for _ in range(int(plan.get("infer", 0))):
        x, y = draw()
        c0 = await drv.counters()
        pred = await drv.run_sample(x, y, learn=False)
        xt = torch.as_tensor(x, dtype=torch.int64).view(1, -1)
        free = [v[0, 0].tolist() for v in g.free_states(xt)]
        gp = int(g.predict(xt)[0, 0])
        c1 = await drv.counters()
        nnz = int((x != 0).sum())
        rep["samples"].append({"learn": False, "nnz": nnz, "pred": pred, "cycles": c1["cycles"] - c0["cycles"],
                               "schedule": pl.sample_cycles(nnz, learn=False)["total"]})
        if pred != gp:
            mismatch(f"inference prediction {pred} != golden {gp}")
        mismatch(_first_state_diff(await drv.read_states("free"), free, "inference free"))
        if c1["t"] != c0["t"]:
            mismatch(f"inference changed t: {c0['t']} -> {c1['t']}")

    # training: states after each phase, prediction, then every parameter
    for _ in range(int(plan.get("train", 0))):
        x, y = draw()
        c0 = await drv.counters()
        pred = await drv.run_sample(x, y, learn=True)
        ph = g.train_sample(torch.as_tensor(x, dtype=torch.int64), y)
        c1 = await drv.counters()
        nnz = int((x != 0).sum())
        rep["samples"].append({"learn": True, "nnz": nnz, "pred": pred, "cycles": c1["cycles"] - c0["cycles"],
                               "schedule": pl.sample_cycles(nnz, learn=True)["total"], "sign": int(ph.sign[0])})
        gp = int(ph.free[-1][0, 0].argmax())
        if pred != gp:
            mismatch(f"sample {len(rep['samples'])}: prediction {pred} != golden {gp}")
        phases = [("free", ph.free), ("nudged", ph.nudged)]
        if ph.negative is not None:
            phases.append(("negative", ph.negative))
        for name, states in phases:
            gold = [v[0, 0].tolist() for v in states]
            mismatch(_first_state_diff(await drv.read_states(name), gold,
                                       f"sample {len(rep['samples'])} {name}"))

    hw = await drv.read_params()
    gold = _golden_params(g)
    rep["first_param_diff"] = _first_param_diff(hw, gold)
    mismatch(rep["first_param_diff"] and f"after training: {rep['first_param_diff']}")
    total = sum(len(r) for W in gold[0] for r in W) + sum(len(b) for b in gold[1])
    changed = sum(a != b for W0, W1 in zip(gold0[0], gold[0]) for r0, r1 in zip(W0, W1) for a, b in zip(r0, r1))
    changed += sum(a != b for b0, b1 in zip(gold0[1], gold[1]) for a, b in zip(b0, b1))
    rep["params_changed"] = changed / total

    hc = await drv.counters()
    gc = g.counters.as_dict()
    gsum = {k: (sum(v) if isinstance(v, list) else v) for k, v in gc.items()}
    rep["counters"] = hc
    rep["golden_counters"] = gsum
    expect = {"update_sat": gsum["update_sat"], "weight_sat": gsum["weight_sat"], "bias_sat": gsum["bias_sat"],
              "act_low": gsum["act_low"], "act_high": gsum["act_high"], "unsettled": gsum["unsettled"],
              "cycling": gsum["cycling"],
              "t": g.samples_seen, "samples": int(plan.get("infer", 0)) + int(plan.get("train", 0))}
    for k, v in expect.items():
        if hc[k] != v:
            mismatch(f"counter {k}: hardware {hc[k]} != golden {v}")
    for r in rep["samples"]:
        if r["cycles"] != r["schedule"]:
            mismatch(f"cycles of a sample {r['cycles']} != schedule {r['schedule']}")
            break
    save()
    if not plan.get("mutate"):
        assert not rep["mismatches"], rep["mismatches"][0]
