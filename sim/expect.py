"""What the core must produce for a test plan, computed by the golden FixedEP (torch).

Runs in the pytest process, so the simulator's embedded Python never imports torch (slow to import
there: docs/verification.md). ``expectations(cfg, plan)`` draws the samples and returns, as plain
JSON-able data: the initial parameters, every sample (pixels, label, learn) with its golden
prediction and phase states, the final parameters and the golden counters.
"""
from __future__ import annotations

import numpy as np
import torch

from eqfpga.golden.config import EPConfig
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.hdl.plan import Plan


def _params(g):
    return [w[0].tolist() for w in g.weights], [b[0].tolist() for b in g.biases]


def _states(states):
    return [v[0, 0].tolist() for v in states]


def make_net(cfg: EPConfig, init_seed=None) -> FixedEP:
    """The config's own init, or (``init_seed``) large random parameters: half the weight range,
    strongly coupled, so the integer dynamics may cycle instead of settling."""
    if init_seed is None:
        return FixedEP(cfg)
    f, r = cfg.fixed, np.random.default_rng(init_seed)
    s = cfg.sizes
    W = [torch.as_tensor(r.integers(f.weight_min // 2, f.weight_max // 2, size=(1, s[n + 1], s[n])))
         for n in range(cfg.n_layers)]
    B = [torch.as_tensor(r.integers(-(1 << (f.bias_bits - 6)), 1 << (f.bias_bits - 6), size=(1, s[n + 1])))
         for n in range(cfg.n_layers)]
    return FixedEP(cfg, weights=W, biases=B)


def expectations(cfg: EPConfig, plan: dict) -> dict:
    """``plan["core_seed"]`` (optional): the seed the core runs with; the golden model then runs
    the config with that seed (its initial parameters too), the one build with any seed."""
    if plan.get("core_seed") is not None:
        cfg = cfg.replace(seed=int(plan["core_seed"]))
    pl = Plan(cfg)
    g = make_net(cfg, plan.get("init_seed"))
    out = {"init": _params(g), "samples": []}
    t0 = int(plan.get("t0", 0))
    g.samples_seen = t0
    rng = np.random.default_rng(plan.get("seed", 0))
    fx, s = cfg.fixed.input_frac, cfg.sizes

    def draw():
        x = rng.integers(1, 1 << fx, size=s[0])
        x[rng.random(s[0]) < plan.get("zero_frac", 0.4)] = 0
        return x, int(rng.integers(0, s[-1]))

    for _ in range(int(plan.get("infer", 0))):
        x, y = draw()
        xt = torch.as_tensor(x, dtype=torch.int64).view(1, -1)
        nnz = int((x != 0).sum())
        out["samples"].append({"x": x.tolist(), "label": y, "learn": False, "pred": int(g.predict(xt)[0, 0]),
                               "states": {"free": _states(g.free_states(xt))},
                               "cycles": pl.sample_cycles(nnz, learn=False)["total"]})
    for _ in range(int(plan.get("train", 0))):
        x, y = draw()
        ph = g.train_sample(torch.as_tensor(x, dtype=torch.int64), y)
        nnz = int((x != 0).sum())
        states = {"free": _states(ph.free), "nudged": _states(ph.nudged)}
        if ph.negative is not None:
            states["negative"] = _states(ph.negative)
        out["samples"].append({"x": x.tolist(), "label": y, "learn": True, "pred": int(ph.free[-1][0, 0].argmax()),
                               "states": states, "sign": int(ph.sign[0]),
                               "cycles": pl.sample_cycles(nnz, learn=True)["total"]})
    out["final"] = _params(g)
    out["counters"] = {k: (sum(v) if isinstance(v, list) else v) for k, v in g.counters.as_dict().items()}
    out["layer_counters"] = {k: v for k, v in g.counters.as_dict().items() if isinstance(v, list)}
    out["t"] = g.samples_seen
    return out
