"""The free-running C++ Verilator harness: long runs with Python only at the run's boundaries.

Proved like the cocotb harness: predictions, cycles per sample (the schedule), counters and every
weight and bias after training, equal to the golden FixedEP.
"""
import numpy as np
import torch

from eqfpga.golden.fixed_model import FixedEP
from eqfpga.hdl.plan import Plan
from eqfpga.sim.configs import spread
from eqfpga.sim.fast import build_fast, param_commands, parse, run_commands, sample_command


def test_fast_harness_trains_bit_exact():
    cfg = spread()["2h-p4-random-stoch"]
    pl = Plan(cfg)
    g = FixedEP(cfg)
    W = [w[0].tolist() for w in g.weights]
    B = [b[0].tolist() for b in g.biases]
    exe = build_fast(cfg, opt="-O1")
    rng = np.random.default_rng(11)
    cmds = param_commands(W, B) + ["T 100"]
    g.samples_seen = 100
    preds, sched = [], []
    for k in range(40):
        x = rng.integers(1, 1 << cfg.fixed.input_frac, size=cfg.sizes[0])
        x[rng.random(cfg.sizes[0]) < 0.4] = 0
        y = int(rng.integers(0, cfg.sizes[-1]))
        learn = k % 5 != 4
        cmds.append(sample_command(x, y, learn))
        xt = torch.as_tensor(x, dtype=torch.int64)
        if learn:
            ph = g.train_sample(xt, y)
            preds.append(int(ph.free[-1][0, 0].argmax()))
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
    gc = {k: (sum(v) if isinstance(v, list) else v) for k, v in g.counters.as_dict().items()}
    c = out["counters"]
    assert c["t"] == 100 + sum(1 for k in range(40) if k % 5 != 4)
    for k in ("update_sat", "weight_sat", "bias_sat", "act_low", "act_high", "unsettled", "cycling"):
        assert c[k] == gc[k], k
