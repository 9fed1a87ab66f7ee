"""Training loop, checkpoints, resume, interruption, weights I/O and the precision study."""
import json

import numpy as np
import pytest
import torch

from eqfpga.golden.config import load_config
from eqfpga.golden.data import MNIST
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.golden.float_model import FloatEP
from eqfpga.golden.study import ROUNDINGS, precision_study, study_formats
from eqfpga.golden.train import Trainer, epoch_order, make_model
from eqfpga.golden.weights import (NetParams, WeightsError, load_npz, load_params, load_state_dict,
                                   save_npz, save_params)

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


TIMINGS = ("train_seconds", "samples_per_s")     # wall-clock fields: the only ones two runs may differ in


def _untimed(history):
    return [{k: v for k, v in rec.items() if k not in TIMINGS} for rec in history]


_REPLAYS = {}       # (cfg, arith, epochs) -> replay: the fit and resume tests compare with the same run


def _replay(cfg, arith, data, epochs):
    """The same training written out from the models' own APIs, on float pixels b/256.

    Returns the model (read only) and, per epoch, (train error, test error, counters or None)."""
    key = (cfg, arith, epochs, id(data))
    if key not in _REPLAYS:
        _REPLAYS[key] = _run_replay(cfg, arith, data, epochs)
    return _REPLAYS[key]


def _run_replay(cfg, arith, data, epochs):
    x = torch.from_numpy(data.train_images.astype("int64"))
    y = torch.from_numpy(data.train_labels.astype("int64"))
    xt = torch.from_numpy(data.test_images.astype("int64"))
    yt = torch.from_numpy(data.test_labels.astype("int64"))
    model = FixedEP(cfg) if arith == "fixed" else FloatEP(cfg, torch.float32)
    rows = []
    for epoch in range(epochs):
        order = epoch_order(cfg, epoch, len(y))
        wrong = 0
        if arith == "fixed":
            for i in order.tolist():
                ph = model.train_sample(x[i].double() / 256, int(y[i]))
                wrong += int(ph.free[-1][0, 0].argmax()) != int(y[i])
            pred = model.free_states(xt.double() / 256)[-1][0].argmax(-1)
            counters = model.counters.as_dict()
        else:
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                onehot = torch.nn.functional.one_hot(y[idx], cfg.sizes[-1]).float()
                out = model.train_batch(x[idx].float() / 256, onehot)
                wrong += int((out.argmax(1) != y[idx]).sum())
            pred = model.predict(xt.float() / 256)
            counters = None
        rows.append((wrong / len(y), int((pred != yt).sum()) / len(yt), counters))
    return model, rows


def _check_against_replay(trainer, cfg, arith, data):
    """The trainer's parameters, history, checkpoint and metrics.json all equal an independent run."""
    model, rows = _replay(cfg, arith, data, trainer.epoch)
    for p, q in zip(_params(trainer.model), _params(model)):
        assert torch.equal(p, q)
    assert len(trainer.history) == len(rows)
    for epoch, (rec, (train_err, test_err, counters)) in enumerate(zip(trainer.history, rows), 1):
        assert rec["epoch"] == epoch
        assert rec["train_error"] == train_err and rec["test_error"] == test_err, (epoch, rec, rows)
        assert rec.get("counters") == counters
        assert rec["samples_per_s"] == pytest.approx(len(data.train_labels) / rec["train_seconds"])
    assert 0 < rows[-1][1] < 1                       # an error rate that can tell runs apart
    saved = load_npz(trainer.checkpoint)
    assert saved.cfg == cfg and saved.arith == arith
    for p, q in zip(saved.weights + saved.biases, model_params_of(trainer.model, arith)):
        assert torch.equal(p, q)
    position = model.batches_seen if arith == "float" else model.samples_seen
    assert saved.meta["epoch"] == trainer.epoch and saved.meta["position"] == position
    assert saved.meta["history"] == trainer.history
    metrics = json.loads((trainer.out_dir / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(trainer.metrics()))
    assert metrics["final_test_error"] == rows[-1][1] and metrics["final_train_error"] == rows[-1][0]
    assert metrics["epochs"] == trainer.epoch and metrics["history"] == trainer.history
    assert (metrics["train_samples"], metrics["test_samples"]) == (len(data.train_labels), len(data.test_labels))


def model_params_of(model, arith):
    """The parameters as a checkpoint holds them: one net's (out, in) tensors."""
    if arith == "fixed":
        return [w[0] for w in model.weights] + [b[0] for b in model.biases]
    return list(model.weights) + list(model.biases)


def test_epoch_order_is_a_seeded_permutation_per_epoch():
    n = 80
    orders = [epoch_order(SMALL, e, n) for e in range(3)]
    for o in orders:
        assert sorted(o.tolist()) == list(range(n))
    assert torch.equal(orders[0], epoch_order(SMALL, 0, n))                  # a function of (seed, epoch)
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    assert not torch.equal(orders[0], epoch_order(SMALL.replace(seed=SMALL.seed + 1), 0, n))


@pytest.mark.parametrize("arith", ["float", "fixed"])
def test_fit_equals_an_independent_run(tmp_path, data, arith):
    """Weights, per-epoch errors, counters, checkpoint and metrics.json of ``fit`` match a replay."""
    cfg = SMALL.replace(batch_size=4) if arith == "float" else SMALL
    t = Trainer(cfg, arith, data=data, out_dir=tmp_path, progress=False, log=lambda *a: None)
    m = t.fit(2)
    assert m["epochs"] == 2
    _check_against_replay(t, cfg, arith, data)


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
    # the resumed run continues identically: same history (but wall-clock), position and checkpoint
    assert _untimed(resumed.history) == _untimed(straight.history)
    assert resumed.history[0] == first.history[0]                 # epoch 1 comes from the checkpoint
    assert _untimed(metrics["history"]) == _untimed(straight.history)
    assert resumed._position() == straight._position()
    a, b = load_npz(tmp_path / "a" / "checkpoint.npz"), load_npz(tmp_path / "b" / "checkpoint.npz")
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        assert torch.equal(p, q)
    assert a.meta["position"] == b.meta["position"] and a.meta["epoch"] == b.meta["epoch"] == 2
    _check_against_replay(resumed, cfg, arith, data)


def test_learned_feedback_resumes_exactly(tmp_path, data):
    """A VF net's checkpoint holds its feedback matrices B: a resumed run continues exactly, in float and
    (C-VF) in fixed point."""
    cfg = SMALL.replace(name="small-vf", batch_size=4, feedback="learned")
    quiet = dict(data=data, progress=False, log=lambda *a: None)
    straight = Trainer(cfg, "float", out_dir=tmp_path / "a", **quiet)
    straight.fit(2)
    Trainer(cfg, "float", out_dir=tmp_path / "b", **quiet).fit(1)
    resumed = Trainer(cfg, "float", out_dir=tmp_path / "b", **quiet)
    resumed.fit(2, resume=True)
    assert not torch.equal(straight.model.feedback[0], FloatEP(cfg).feedback[0])     # B was trained
    for p, q in zip(_params(straight.model) + straight.model.feedback,
                    _params(resumed.model) + resumed.model.feedback):
        assert torch.equal(p, q)
    assert _untimed(resumed.history) == _untimed(straight.history)
    saved = load_npz(tmp_path / "b" / "checkpoint.npz")
    assert saved.cfg == cfg and torch.equal(saved.feedback[0], resumed.model.feedback[0])
    fixed = cfg.replace(batch_size=1, continual=True, fixed={"update_rounding": "stochastic"})
    quiet["limit"] = 20
    straight = Trainer(fixed, "fixed", out_dir=tmp_path / "c", **quiet)
    straight.fit(2)
    Trainer(fixed, "fixed", out_dir=tmp_path / "d", **quiet).fit(1)
    resumed = Trainer(fixed, "fixed", out_dir=tmp_path / "d", **quiet)
    resumed.fit(2, resume=True)
    assert not torch.equal(straight.model.feedback[0], FixedEP(fixed).feedback[0])
    for p, q in zip(_params(straight.model) + straight.model.feedback,
                    _params(resumed.model) + resumed.model.feedback):
        assert torch.equal(p, q)
    assert _untimed(resumed.history) == _untimed(straight.history)
    saved = load_npz(tmp_path / "d" / "checkpoint.npz")
    assert saved.arith == "fixed" and torch.equal(saved.feedback[0], resumed.model.feedback[0][0])


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


def test_study_runs_nets_side_by_side(tmp_path, data, monkeypatch):
    """Each row equals an independent net of that format; the table, JSON and plot show those numbers."""
    import matplotlib.figure
    plotted = []
    savefig = matplotlib.figure.Figure.savefig

    def capture(fig, path, *a, **k):
        ax = fig.axes[0]
        plotted.append((ax.get_yscale(), {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
                                          for line in ax.lines}))
        return savefig(fig, path, *a, **k)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)

    r = precision_study(SMALL, widths=[8, 12], epochs=1, data=data, out_dir=tmp_path, progress=False,
                        log=lambda *a: None)
    assert len(r["rows"]) == 6
    assert (tmp_path / "study.png").stat().st_size > 1000
    assert (tmp_path / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 12 (11) |" in (tmp_path / "study.md").read_text()
    assert json.loads((tmp_path / "study.json").read_text()) == json.loads(json.dumps(r))

    # every net trained on its own, on float pixels, in the same order
    x = torch.from_numpy(data.train_images.astype("int64")).double() / 256
    xt = torch.from_numpy(data.test_images.astype("int64")).double() / 256
    yt = torch.from_numpy(data.test_labels.astype("int64"))
    order = epoch_order(SMALL, 0, len(data.train_labels)).tolist()
    fmts = study_formats(SMALL, [8, 12])
    assert len(fmts) == len(r["rows"])
    expected = {}
    for fmt, row in zip(fmts, r["rows"]):
        net = FixedEP(SMALL.replace(fixed=fmt))
        for i in order:
            net.train_sample(x[i], int(data.train_labels[i]))
        err = int((net.predict(xt)[0] != yt).sum()) / len(yt)
        c = net.counters.as_dict()
        assert row == {"weight_bits": fmt.weight_bits, "weight_frac": fmt.weight_frac,
                       "rounding": fmt.update_rounding, "test_error": err,
                       "weight_sat": sum(c["weight_sat"]), "update_sat": sum(c["update_sat"])}, row
        expected[(fmt.weight_bits, fmt.update_rounding)] = (fmt.weight_frac, err)
    assert len({row["test_error"] for row in r["rows"]}) > 1       # the nets differ

    table = ["| weight bits (frac) | truncate | nearest | stochastic |", "|---|---|---|---|"]
    for w in (8, 12):
        table.append(f"| {w} ({expected[(w, 'nearest')][0]}) | "
                     + " | ".join(f"{100 * expected[(w, m)][1]:.2f}%" for m in ROUNDINGS) + " |")
    assert (tmp_path / "study.md").read_text() == "\n".join(table) + "\n"

    assert len(plotted) == 1
    yscale, curves = plotted[0]
    assert yscale == "log"
    assert curves == {m: ([8, 12], [100 * expected[(w, m)][1] for w in (8, 12)]) for m in ROUNDINGS}


@pytest.mark.parametrize("fx", [4, 8])
def test_bytes_become_input_lsbs_for_any_input_frac(tmp_path, data, fx):
    """MNIST bytes are converted to UQ(0, input_frac) exactly as the float pixels b/256 would be."""
    cfg = SMALL.replace(fixed={"input_frac": fx})
    t = Trainer(cfg, "fixed", data=data, out_dir=tmp_path, progress=False, log=lambda *a: None)
    b = t.x_train[:5]
    assert torch.equal(t.model.bytes_to_lsbs(b), t.model.encode_input(b.double() / 256))
    t.fit(1)
    # training on the LSBs gives what training on the float pixels gives, bit for bit
    _check_against_replay(t, cfg, "fixed", data)
