"""The free-running C++ Verilator harness: long runs with Python only at the run's boundaries.

Proved like the cocotb harness, on more corners (``sim.configs.fast_spread``): predictions, cycles
per sample (the schedule), every counter and every weight and bias after training, equal to the
golden FixedEP. Inference samples and an all-zero sample are mixed in.
"""
import numpy as np
import pytest
import torch

from eqfpga.golden.fixed_model import FixedEP
from eqfpga.hdl.plan import Plan
from eqfpga.sim.configs import fast_spread
from eqfpga.sim.fast import build_fast, param_commands, parse, run_commands, sample_command

CONFIGS = fast_spread()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_harness_trains_bit_exact(name):
    cfg = CONFIGS[name]
    pl = Plan(cfg)
    g = FixedEP(cfg)
    W0 = [w[0].tolist() for w in g.weights]
    B0 = [b[0].tolist() for b in g.biases]
    exe = build_fast(cfg, opt="-O0")
    rng = np.random.default_rng(11)
    cmds = param_commands(W0, B0) + ["T 100"]
    g.samples_seen = 100
    preds, sched, n_train = [], [], 0
    for k in range(30):
        x = rng.integers(1, 1 << cfg.fixed.input_frac, size=cfg.sizes[0])
        x[rng.random(cfg.sizes[0]) < 0.4] = 0
        if k == 3:
            x[:] = 0
        y = int(rng.integers(0, cfg.sizes[-1]))
        learn = k % 5 != 4
        cmds.append(sample_command(x, y, learn))
        xt = torch.as_tensor(x, dtype=torch.int64)
        if learn:
            ph = g.train_sample(xt, y)
            preds.append(int(ph.free[-1][0, 0].argmax()))
            n_train += 1
        else:
            preds.append(int(g.predict(xt.view(1, -1))[0, 0]))
        sched.append(pl.sample_cycles(int((x != 0).sum()), learn)["total"])
    cmds.append("D")
    out = parse(run_commands(exe, cmds), cfg)
    assert out["pred"] == preds
    assert out["cycles"] == sched
    gold_W = [w[0].tolist() for w in g.weights]
    gold_B = [b[0].tolist() for b in g.biases]
    for n in range(cfg.n_layers):
        for i, row in enumerate(gold_W[n]):
            assert out["W"][n][i] == row, f"W{n}[{i}] differs"
        assert out["b"][n] == gold_B[n], f"b{n} differs"
    changed = sum(a != b for M0, M1 in zip(W0, gold_W) for r0, r1 in zip(M0, M1) for a, b in zip(r0, r1))
    assert changed >= 0.1 * sum(len(r) for M in W0 for r in M)
    gc = {k: (sum(v) if isinstance(v, list) else v) for k, v in g.counters.as_dict().items()}
    c = out["counters"]
    assert c["t"] == 100 + n_train
    for k in ("update_sat", "weight_sat", "bias_sat", "act_low", "act_high", "unsettled", "cycling"):
        assert c[k] == gc[k], k
