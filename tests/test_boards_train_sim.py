"""End to end: `eqfpga train --sim` trains the simulated board (board logic, UART included, in
Verilator over a pty) on real MNIST through the host program, and the weights it reads back equal the
fixed-point golden model trained on the same samples, bit for bit; `--resume` continues exactly.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from eqfpga.boards.link import Device, LinkError
from eqfpga.boards.trainer import SIM_REPLY_TIMEOUT, BoardMismatch, BoardTrainer, pixels_for
from eqfpga.golden.config import load_config
from eqfpga.golden.data import load_mnist
from eqfpga.golden.train import epoch_order
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.golden.weights import load_npz
from eqfpga.sim.boardsim import SimBoard
from eqfpga.sim.prebuild import design
from eqfpga.tools.cli import main

# mnist-1h with P = 8: the shipped P = 64 core takes minutes to compile for the simulated board
CFG = load_config("mnist-1h").replace(parallelism=8, name="mnist-1h-p8")
# the host's resume and golden checks on a narrower MNIST net: the same code paths, 8x fewer weights on the line
SMALL = CFG.replace(sizes=(784, 16, 10), parallelism=4, name="mnist-784-16-10")
PREBUILD = [design("boardsim", SMALL)]   # built while earlier tests run (conftest.py)


def _golden(cfg, data, n, epochs):
    """FixedEP trained as `eqfpga golden train --arith fixed --limit n` would train it."""
    g = FixedEP(cfg)
    x, y = pixels_for(cfg, data.train_images[:n]), data.train_labels[:n]
    for e in range(epochs):
        for j in epoch_order(cfg, e, n).numpy():
            g.train_sample(torch.from_numpy(x[j]), int(y[j]))
    return g


def _assert_equal(params, g):
    for n in range(len(g.weights)):
        assert np.array_equal(params.weights[n].numpy(), g.weights[n][0].numpy()), f"W{n}"
        assert np.array_equal(params.biases[n].numpy(), g.biases[n][0].numpy()), f"b{n}"


def _cli_train_bit_identical(tmp_path, cfg, limit, test_limit):
    data = load_mnist()
    out = tmp_path / "run"
    cfg_file = tmp_path / f"{cfg.name}.json"
    cfg_file.write_text(cfg.to_json())
    rc = main(["train", "--sim", "--config", str(cfg_file), "--epochs", "1", "--limit", str(limit),
               "--test-limit", str(test_limit), "--check-golden", "--no-progress", "--out", str(out)])
    assert rc == 0
    p = load_npz(out / "checkpoint.npz")
    assert p.meta["position"] == limit and p.meta["epoch"] == 1
    g = _golden(cfg, data, limit, 1)
    _assert_equal(p, g)
    changed = sum(int((p.weights[n] != FixedEP(cfg).weights[n][0]).sum()) for n in range(cfg.n_layers))
    assert changed > 1000, "training must change many weights"
    rec = p.meta["history"][0]
    assert rec["golden_identical"] is True
    # the board's own inference on the test images agrees with the golden model's
    xt = torch.from_numpy(pixels_for(cfg, data.test_images[:test_limit]))
    labels = torch.from_numpy(data.test_labels[:test_limit].astype(np.int64))
    err = float((g.predict(xt)[0] != labels).double().mean())
    assert rec["test_error"] == pytest.approx(err, abs=0)


def test_train_sim_cli_bit_identical_to_golden(tmp_path):
    """`eqfpga train --sim` on a 784-16-10 board (12,704 weights: each transfer over the simulated
    line is ~8x shorter than the preset's; the preset's net: the soak test below)."""
    _cli_train_bit_identical(tmp_path, SMALL, 120, 40)


@pytest.mark.slow
def test_train_sim_cli_preset_net(tmp_path):
    """The same with mnist-1h's net (784-128-10, P = 8): 101,770 parameters on the line."""
    _cli_train_bit_identical(tmp_path, CFG, 300, 100)


def test_lost_link_keeps_checkpoint_and_resume_is_exact(tmp_path):
    """The simulated board dies mid-epoch (a pulled cable): the run stops with a clear error, the
    last checkpoint (mid-epoch) is intact, and a new host process resumes on a new board exactly."""
    data = load_mnist()
    kw = dict(data=data, out_dir=tmp_path, limit=80, test_limit=0, progress=False, log=lambda *a: None,
              chunk=10, checkpoint_every=30)
    ckpt = tmp_path / "checkpoint.npz"
    # 3 s: enough for a simulated board on a loaded machine, short for the resends after the kill
    with SimBoard(SMALL) as board, Device.open(board.port, 3_000_000, timeout=3.0) as dev:
        def pull_cable():
            while not ckpt.exists():
                time.sleep(0.05)
            board.process.kill()
        threading.Thread(target=pull_cable, daemon=True).start()
        with pytest.raises(LinkError, match="--resume"):
            BoardTrainer(dev, SMALL, **kw).fit(2)
    p = load_npz(ckpt)
    assert p.meta["epoch"] == 0 and p.meta["position"] in (30, 40, 50, 60, 70)
    with SimBoard(SMALL) as board, Device.open(board.port, 3_000_000, timeout=SIM_REPLY_TIMEOUT) as dev:
        t = BoardTrainer(dev, SMALL, **dict(kw, checkpoint_every=None))
        t.fit(1, resume=True)
        assert t.position == 80
    _assert_equal(load_npz(ckpt), _golden(SMALL, data, 80, 1))


def test_board_with_wrong_weights_is_caught(tmp_path):
    """check_golden must fail when the board's weights differ from the golden model's."""
    data = load_mnist()
    with SimBoard(SMALL) as board, Device.open(board.port, 3_000_000, timeout=SIM_REPLY_TIMEOUT) as dev:
        t = BoardTrainer(dev, SMALL, data=data, out_dir=tmp_path, limit=20, test_limit=0, progress=False,
                         log=lambda *a: None, check_golden=True)
        t.start()
        t.train_epoch()
        dev.write_params(0, 1, 3, 7, [12345 % 32768])      # corrupt W1[3][7] on the board only
        with pytest.raises(BoardMismatch, match=r"W1\[3, 7\]"):
            t.save()


def test_board_trains_another_seed_than_its_build(tmp_path):
    """One bitstream, any seed: a board built with seed 0 trains the config with seed 7 (the host
    writes it into the seed register), bit-identical to the golden model with seed 7 (initial weights,
    sample order and stochastic rounding all follow the seed), while a config that differs in an
    elaborated field is still refused, and a seed register changed behind the host's back is caught."""
    data = load_mnist()
    assert SMALL.seed == 0 and SMALL.fixed.update_rounding == "stochastic"
    other = SMALL.replace(seed=7)
    kw = dict(data=data, out_dir=tmp_path, limit=40, test_limit=0, progress=False, log=lambda *a: None, chunk=10)
    with SimBoard(SMALL) as board, Device.open(board.port, 3_000_000, timeout=SIM_REPLY_TIMEOUT) as dev:
        assert dev.config() == SMALL and dev.seed() == 0
        with pytest.raises(LinkError, match=r"\(T1: device 20, host 21\)"):
            BoardTrainer(dev, other.replace(T1=21), **kw)
        t = BoardTrainer(dev, other, check_golden=True, **kw)
        m = t.fit(1)
        assert dev.seed() == 7 and m["history"][0]["golden_identical"] is True
        dev.set_seed(8)
        with pytest.raises(BoardMismatch, match="seed register holds 8 but the config's seed is 7"):
            t.save()
    p = load_npz(tmp_path / "checkpoint.npz")
    assert p.cfg == other
    _assert_equal(p, _golden(other, data, 40, 1))
    built = _golden(SMALL, data, 40, 1)
    assert any(not np.array_equal(p.weights[n].numpy(), built.weights[n][0].numpy()) for n in range(2))


def test_cli_train_seed_option(tmp_path):
    """`eqfpga train --sim --seed N`: the simulated board is built from the config (seed 0) and
    trains with seed N, bit-identical to the golden model with seed N."""
    cfg_file = tmp_path / "small.json"
    cfg_file.write_text(SMALL.to_json())
    out = tmp_path / "run"
    assert main(["train", "--sim", "--config", str(cfg_file), "--seed", "7", "--epochs", "1", "--limit", "20",
                 "--test-limit", "0", "--check-golden", "--no-progress", "--out", str(out)]) == 0
    p = load_npz(out / "checkpoint.npz")
    assert p.cfg == SMALL.replace(seed=7) and p.meta["history"][0]["golden_identical"] is True
    _assert_equal(p, _golden(SMALL.replace(seed=7), load_mnist(), 20, 1))
