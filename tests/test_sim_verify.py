"""The long-run verification: the RTL core in the free-running C++ Verilator harness vs FixedEP.

Small configs run on random integer data (they cannot take MNIST's 784 inputs); one short run of
mnist-1h uses real MNIST through the CLI. A mutation test corrupts one stored weight in the RTL only
and expects the report to name it; the step-by-step trace is checked both ways (it agrees on a good
model, and it names the first diverging state when the golden side is corrupted).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eqfpga.golden.config import load_config
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.sim.fastsim import FastSim, param_checksum
from eqfpga.sim.prebuild import design
from eqfpga.sim.verify import trace_sample, verify


def _fit_acc(cfg):
    return cfg.replace(fixed={"acc_bits": max(cfg.fixed.acc_bits, cfg.acc_bits_needed())})


TINY = load_config("tiny")
# two hidden layers, symmetric nudging (a negative phase), stochastic update rounding, P = 3
H2_SYM = _fit_acc(TINY.replace(name="h2symst", sizes=(10, 6, 5, 3), lrs=(0.25, 0.125, 0.125), parallelism=3,
                               T1=7, T2=3, nudging="symmetric", fixed={"update_rounding": "stochastic"}))
# mnist-1h as shipped (P = 64) takes minutes to compile: `make test` runs the real-MNIST CLI check on
# the same net with P = 8; the soak (marker slow) runs the preset itself
MNIST_P8 = load_config("mnist-1h").replace(parallelism=8, name="mnist-1h-p8")
PREBUILD = [design("fastsim", cfg) for cfg in (TINY, H2_SYM, MNIST_P8)]


def _data(cfg, n, seed=0, zero_frac=0.4):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 1 << cfg.fixed.input_frac, size=(n, cfg.sizes[0]))
    x[rng.random(x.shape) < zero_frac] = 0
    return x, rng.integers(0, cfg.sizes[-1], n)


@pytest.fixture(scope="module")
def tiny_sim():
    with FastSim(TINY) as fs:
        yield fs


@pytest.mark.parametrize("cfg", [TINY, H2_SYM], ids=["tiny", "2h-sym-stoch"])
def test_random_data_bit_exact(cfg):
    x, y = _data(cfg, 460)
    r = verify(cfg, samples=400, data=(x, y), check_every=100, batch=64, test=(x[400:], y[400:]), log=None)
    assert r["bit_exact"], r["first_mismatch"]
    assert r["samples_compared"] == 400 and r["full_checks"] == 4
    assert r["counters"]["rtl"]["t"] == 400
    assert r["test"]["equal"] and r["test"]["images"] == 60
    assert r["cycles_per_sample"] > 0 and r["sim_cycles_per_s"] > 0


def test_mutation_is_named():
    x, y = _data(TINY, 200, seed=1)
    r = verify(TINY, samples=200, data=(x, y), check_every=50, batch=40, inject=[(77, "W", 1, 2, 5, 4)], log=None)
    assert not r["bit_exact"]
    d = r["first_mismatch"]
    assert (d["sample"], d["what"], d["layer"], d["index"]) == (77, "weight", 1, [2, 5]), d
    assert d["rtl"] != d["golden"] and (d["rtl"] ^ d["golden"]) & 0xFFF == 1 << 4
    # a bias of layer 0, at a full-check boundary
    r = verify(TINY, samples=120, data=(x, y), check_every=50, batch=40, inject=[(100, "b", 0, 6, 1)], log=None)
    d = r["first_mismatch"]
    assert (d["sample"], d["what"], d["layer"], d["index"]) == (100, "bias", 0, [6]), d


def test_checksum_is_the_rtl_memory(tiny_sim):
    """The C++ checksum of the RTL's memories equals param_checksum of what was loaded; one changed
    value always changes it; raw memory dump and the access port agree."""
    rng = np.random.default_rng(3)
    f, s = TINY.fixed, TINY.sizes
    W = [rng.integers(f.weight_min, f.weight_max + 1, size=(s[n + 1], s[n])) for n in range(2)]
    B = [rng.integers(f.bias_min, f.bias_max + 1, size=s[n + 1]) for n in range(2)]
    W[0][0, 0], W[1][-1, -1], B[1][-1] = f.weight_min, f.weight_max, f.bias_min
    tiny_sim.write_params(W, B)
    assert tiny_sim.checksum() == param_checksum(W, B)
    for got, want in zip(tiny_sim.dump_params() + tiny_sim.read_params_access(), (W, B, W, B)):
        assert all((np.asarray(a) == np.asarray(b)).all() for a, b in zip(got, want))
    W[1][1, 3] += 1
    assert param_checksum(W, B) != tiny_sim.checksum()
    tiny_sim.write_weight(1, 1, 3, W[1][1, 3])
    assert tiny_sim.checksum() == param_checksum(W, B)


def test_trace_agrees_and_names_a_state(tiny_sim):
    """The per-step snapshots line up with golden's trace (no divergence on a good model, training
    and inference); a golden-only change of W_0 is named in the input drive, and of W_1 in a state."""
    x, y = _data(TINY, 12, seed=2)
    g = FixedEP(TINY)
    tiny_sim.write_params([w[0].numpy() for w in g.weights], [b[0].numpy() for b in g.biases])
    tiny_sim.set_t(0)
    for i in range(6):
        assert trace_sample(tiny_sim, g, x[i], int(y[i])) is None
    for i in range(6, 8):
        assert trace_sample(tiny_sim, g, x[i], int(y[i]), learn=False) is None
    j = int(np.flatnonzero(x[8])[0])
    g.weights[0][0, 3, j] += 5
    d = trace_sample(tiny_sim, g, x[8], int(y[8]))
    assert (d["phase"], d["layer"], d["index"]) == ("input_drive", 1, [3]), d
    assert d["golden"] - d["rtl"] == 5 * int(x[8][j]) << (TINY.fixed.state_frac - TINY.fixed.input_frac)


def test_trace_names_a_state_two_hidden_layers():
    """Output row 1 of W_2 changed on the golden side only: with b_1 = 0.5 (s2 = 0.5 after step 1)
    and b_2[1] = 0 (s3[1] = 0 after step 1, so the row feeds nothing back), the first divergence is
    s3[1] at step 2 of the free phase."""
    f = H2_SYM.fixed
    x, y = _data(H2_SYM, 4, seed=4)
    g = FixedEP(H2_SYM)
    g.biases[1] = torch.full_like(g.biases[1], 1 << (f.bias_frac - 1))
    g.biases[2][0, 1] = 0
    g.weights[2][0, 1, :] = 1 << (f.weight_frac - 1)
    with FastSim(H2_SYM) as fs:
        fs.write_params([w[0].numpy() for w in g.weights], [b[0].numpy() for b in g.biases])
        fs.set_t(0)
        assert trace_sample(fs, g, x[0], int(y[0]), learn=False) is None
        g.weights[2][0, 1, :] -= 40
        d = trace_sample(fs, g, x[1], int(y[1]))
    assert (d["phase"], d["step"], d["what"], d["layer"], d["index"]) == ("free", 2, "state", 3, [1]), d
    assert d["rtl"] > d["golden"]


def test_cli_mnist_1h_short_run(tmp_path, capsys):
    from eqfpga.tools.cli import main
    out = tmp_path / "report.json"
    cfg_file = tmp_path / "mnist-1h-p8.json"
    cfg_file.write_text(MNIST_P8.to_json())
    assert main(["verify", "--config", str(cfg_file), "--samples", "20", "--check-every", "10",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["bit_exact"] and r["samples_compared"] == 20 and r["full_checks"] == 2
    assert "bit-exact           yes" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_mnist_1h_soak(tmp_path, capsys):
    """The short run above, longer: 2,000 MNIST samples, then the 10,000 test images (learn = 0)."""
    from eqfpga.tools.cli import main
    out = tmp_path / "report.json"
    assert main(["verify", "--config", "mnist-1h", "--samples", "2000", "--check-every", "500", "--test",
                 "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["bit_exact"] and r["samples_compared"] == 2000 and r["full_checks"] == 4
    assert r["test"]["equal"] and r["test"]["images"] == 10_000 and r["test"]["prediction_mismatches"] == 0
    assert "bit-exact           yes" in capsys.readouterr().out


def test_cli_has_no_simulator_choice(capsys):
    """Verilator is the one simulator: argparse rejects --simulator (usage error, exit 2)."""
    from eqfpga.tools.cli import main
    with pytest.raises(SystemExit) as e:
        main(["verify", "--config", "tiny", "--simulator", "icarus"])
    assert e.value.code == 2
    assert "--simulator" in capsys.readouterr().err


def test_seed_port_switches_at_run_time():
    """One FastSim process (one build) trains H2_SYM (stochastic rounding) with two seeds in turn,
    from the same initial weights: each bit-exact with FixedEP of the config with that seed, and the
    two differ; a verify() run with another seed reuses the same build."""
    from eqfpga.sim.build_cache import core_tag

    x, y = _data(H2_SYM, 30, seed=5)
    init = FixedEP(H2_SYM)
    W0, B0 = [w[0].numpy() for w in init.weights], [b[0].numpy() for b in init.biases]
    finals = []
    with FastSim(H2_SYM) as fs:
        for s in (H2_SYM.seed, 0x9E3779B9):
            g = FixedEP(H2_SYM.replace(seed=s), weights=[torch.as_tensor(w)[None] for w in W0],
                        biases=[torch.as_tensor(b)[None] for b in B0])
            fs.set_seed(s)
            fs.write_params(W0, B0)
            fs.set_t(0)
            r = fs.run(x, y)
            for k in range(len(y)):
                g.train_sample(torch.as_tensor(x[k]), int(y[k]))
            assert int(r["checksum"][-1]) == param_checksum(g.weights, g.biases), f"seed {s}"
            W, B = fs.read_params_access()
            assert all(np.array_equal(a, b[0].numpy()) for a, b in zip(W + B, g.weights + g.biases)), f"seed {s}"
            finals.append(fs.checksum())
        with pytest.raises(ValueError, match="seed must be"):
            fs.set_seed(-1)
    assert finals[0] != finals[1]
    assert core_tag(H2_SYM.replace(seed=3, epochs=4)) == core_tag(H2_SYM)
    r = verify(H2_SYM.replace(seed=0x9E3779B9), samples=30, data=(x, y), check_every=30, log=None)
    assert r["bit_exact"], r["first_mismatch"]
