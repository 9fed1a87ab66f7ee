"""Training loop, checkpoints, resume, interruption, weights I/O and the precision study."""
import json

import numpy as np
import pytest
import torch

from eqfpga.golden.config import load_config
from eqfpga.golden.data import MNIST
from eqfpga.golden.float_model import FloatEP
from eqfpga.golden.study import precision_study
from eqfpga.golden.train import Trainer, make_model
from eqfpga.golden.weights import (NetParams, WeightsError, load_npz, load_params, load_state_dict,
                                   save_npz, save_params, save_state_dict)

SMALL = load_config("mnist-1h").replace(name="small", sizes=(784, 9, 10), T1=6, T2=3,
                                        fixed={"acc_bits": 36})


@pytest.fixture(scope="module")
def data():
    """Random MNIST-shaped data: the loop, not the accuracy, is under test here."""
    g = np.random.default_rng(0)
    imgs = (g.random((120, 784)) < 0.2) * g.integers(0, 256, (120, 784))
    labels = g.integers(0, 10, 120)
    return MNIST(imgs[:80].astype(np.uint8), labels[:80].astype(np.uint8),
                 imgs[80:].astype(np.uint8), labels[80:].astype(np.uint8))


def _params(model):
    return [w.clone() for w in model.weights] + [b.clone() for b in model.biases]


@pytest.mark.parametrize("arith", ["float", "fixed"])
def test_resume_equals_uninterrupted(tmp_path, data, arith):
    cfg = SMALL.replace(batch_size=4) if arith == "float" else SMALL
    straight = Trainer(cfg, arith, data=data, out_dir=tmp_path / "a", progress=False, log=lambda *a: None)
    straight.fit(2)
    first = Trainer(cfg, arith, data=data, out_dir=tmp_path / "b", progress=False, log=lambda *a: None)
    first.fit(1)
    resumed = Trainer(cfg, arith, data=data, out_dir=tmp_path / "b", progress=False, log=lambda *a: None)
    m = resumed.fit(2, resume=True)
    assert m["epochs"] == 2 and len(m["history"]) == 2
    for p, q in zip(_params(straight.model), _params(resumed.model)):
        assert torch.equal(p, q)
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["final_test_error"] == straight.history[-1]["test_error"]


def test_interrupt_keeps_last_checkpoint(tmp_path, data):
    t = Trainer(SMALL, "fixed", data=data, out_dir=tmp_path, progress=False, log=lambda *a: None)
    t.fit(1)
    saved = load_npz(tmp_path / "checkpoint.npz")
    calls = {"n": 0}

    def boom(*a, **k):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt
        return orig(*a, **k)
    orig = t.model.train_sample
    t.model.train_sample = boom
    with pytest.raises(KeyboardInterrupt):
        t.fit(2)
    again = load_npz(tmp_path / "checkpoint.npz")
    assert again.meta["epoch"] == 1
    for p, q in zip(saved.weights + saved.biases, again.weights + again.biases):
        assert torch.equal(p, q)


def test_resume_refuses_other_config(tmp_path, data):
    Trainer(SMALL, "fixed", data=data, out_dir=tmp_path, progress=False, log=lambda *a: None).fit(1)
    other = SMALL.replace(T1=7)
    with pytest.raises(ValueError, match="differs"):
        Trainer(other, "fixed", data=data, out_dir=tmp_path, progress=False, log=lambda *a: None).fit(2, resume=True)


def test_config_must_fit_mnist(data):
    with pytest.raises(ValueError, match="784 inputs and 10 outputs"):
        Trainer(load_config("tiny"), "fixed", data=data)


@pytest.mark.parametrize("ext", ["npz", "pt"])
def test_weights_round_trip(tmp_path, ext):
    net = FloatEP(SMALL, torch.float64)
    p = NetParams(SMALL, "float", net.weights, net.biases, {"epoch": 3})
    save_params(tmp_path / f"w.{ext}", p)
    q = load_params(tmp_path / f"w.{ext}")
    assert q.cfg == SMALL and q.arith == "float" and q.meta == {"epoch": 3}
    for a, b in zip(p.weights + p.biases, q.weights + q.biases):
        assert torch.equal(a, b)


def test_plain_state_dict_needs_config_and_shapes_are_checked(tmp_path):
    net = FloatEP(SMALL, torch.float32)
    sd = {f"layers.{n}.weight": w for n, w in enumerate(net.weights)}
    sd.update({f"layers.{n}.bias": b for n, b in enumerate(net.biases)})
    torch.save(sd, tmp_path / "plain.pt")
    with pytest.raises(WeightsError, match="needs the config"):
        load_state_dict(tmp_path / "plain.pt")
    assert load_state_dict(tmp_path / "plain.pt", SMALL).arith == "float"
    with pytest.raises(WeightsError, match="layer 0"):
        load_state_dict(tmp_path / "plain.pt", SMALL.replace(sizes=(784, 10, 10)))


def test_corrupt_weights_file(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="not an eqfpga weights file"):
        load_npz(tmp_path / "bad.npz")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="not a torch state_dict"):
        load_state_dict(tmp_path / "bad.pt")


def test_quantise_float_net(tmp_path):
    net = FloatEP(SMALL, torch.float64)
    save_npz(tmp_path / "f.npz", NetParams(SMALL, "float", net.weights, net.biases))
    fixed = make_model(SMALL, "fixed", params=load_npz(tmp_path / "f.npz"))
    W, _ = fixed.float_params()
    lsb = 2.0 ** -SMALL.fixed.weight_frac
    assert (W[0] - net.weights[0]).abs().max() <= lsb / 2


def test_study_runs_nets_side_by_side(tmp_path, data):
    r = precision_study(SMALL, widths=[8, 12], epochs=1, data=data, out_dir=tmp_path, progress=False,
                        log=lambda *a: None)
    assert len(r["rows"]) == 6
    assert (tmp_path / "study.png").stat().st_size > 1000
    assert "| 12 (11) |" in (tmp_path / "study.md").read_text()


@pytest.mark.parametrize("fx", [4, 8])
def test_bytes_become_input_lsbs_for_any_input_frac(tmp_path, data, fx):
    """MNIST bytes are converted to UQ(0, input_frac) exactly as the float pixels b/256 would be."""
    cfg = SMALL.replace(fixed={"input_frac": fx})
    t = Trainer(cfg, "fixed", data=data, out_dir=tmp_path, progress=False, log=lambda *a: None)
    b = t.x_train[:5]
    assert torch.equal(t.model.bytes_to_lsbs(b), t.model.encode_input(b.double() / 256))
    t.fit(1)
