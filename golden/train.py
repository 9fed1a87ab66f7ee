"""Training the golden model on MNIST: the API under ``eqfpga golden train``.

Float training uses minibatches of ``cfg.batch_size``; fixed-point training goes one sample at a
time, as on chip. Each epoch visits the training set in a seeded order (a function of seed and
epoch, so a resumed run continues exactly). After every epoch the parameters and the history are
checkpointed atomically to ``out_dir/checkpoint.npz``; Ctrl-C stops the run and leaves the last
checkpoint intact. Errors are fractions (0.02 = 2%), "train error" is measured on the fly (the
free-phase prediction before each update), "test error" on the whole test set after the epoch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .config import EPConfig
from .data import MNIST, load_mnist
from .fixed_model import Counters, FixedEP
from .float_model import FloatEP
from .weights import NetParams, load_npz, save_npz

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def epoch_order(cfg: EPConfig, epoch: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
    return torch.randperm(n, generator=g)


def make_model(cfg: EPConfig, arith: str, dtype=torch.float32, params: NetParams | None = None):
    if arith == "float":
        if params is None:
            return FloatEP(cfg, dtype)
        return FloatEP(cfg, dtype, [w.double() for w in params.weights], [b.double() for b in params.biases],
                       [m.double() for m in params.feedback])
    if arith == "fixed":
        cfg.check_fixed()
        if params is None:
            return FixedEP(cfg)
        if params.arith == "float":   # a float-trained net: quantise it (B as W)
            return FixedEP.from_float(cfg, params.weights, params.biases, feedback=params.feedback)
        return FixedEP(cfg, weights=[w.unsqueeze(0) for w in params.weights],
                       biases=[b.unsqueeze(0) for b in params.biases],
                       feedback=[m.unsqueeze(0) for m in params.feedback])
    raise ValueError(f"arith must be 'float' or 'fixed', not {arith!r}")


def model_params(model, arith: str, meta: dict) -> NetParams:
    if arith == "float":
        return NetParams(model.cfg, "float", model.weights, model.biases, meta, model.feedback)
    return NetParams(model.cfg, "fixed", [w[0] for w in model.weights], [b[0] for b in model.biases], meta,
                     [m[0] for m in model.feedback])


def test_error(model, arith: str, images: torch.Tensor, labels: torch.Tensor, batch: int = 2000) -> float:
    """Fraction of misclassified images (inference: free phase only, batched)."""
    if arith == "fixed":
        return float(model.error_rate(model.bytes_to_lsbs(images), labels, batch)[0])
    wrong = 0
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].to(model.dtype) / 256.0
        wrong += int((model.predict(x) != labels[i:i + batch]).sum())
    return wrong / images.shape[0]


class Trainer:
    def __init__(self, cfg: EPConfig, arith: str = "float", *, data: MNIST | None = None,
                 dtype: str = "float32", out_dir="runs/golden", limit: int | None = None,
                 test_limit: int | None = None, progress: bool = True, log=print):
        self.cfg, self.arith, self.log, self.progress = cfg, arith, log, progress
        self.dtype = DTYPES[dtype]
        if cfg.sizes[0] != 784 or cfg.sizes[-1] != 10:
            raise ValueError(f"config {cfg.name!r} has {cfg.sizes[0]} inputs and {cfg.sizes[-1]} outputs; "
                             "MNIST needs 784 inputs and 10 outputs (sizes = [784, ..., 10])")
        data = data or load_mnist()
        n_train = min(limit or len(data.train_labels), len(data.train_labels))
        n_test = min(test_limit or len(data.test_labels), len(data.test_labels))
        self.x_train = torch.from_numpy(data.train_images[:n_train].astype("int64"))
        self.y_train = torch.from_numpy(data.train_labels[:n_train].astype("int64"))
        self.x_test = torch.from_numpy(data.test_images[:n_test].astype("int64"))
        self.y_test = torch.from_numpy(data.test_labels[:n_test].astype("int64"))
        self.out_dir = Path(out_dir)
        self.checkpoint = self.out_dir / "checkpoint.npz"
        self.model = make_model(cfg, arith, self.dtype)
        self.history: list = []
        self.epoch = 0

    # ---- checkpoints ---------------------------------------------------------------------------
    def save(self):
        meta = {"epoch": self.epoch, "history": self.history, "arith": self.arith,
                "position": self._position()}
        save_npz(self.checkpoint, model_params(self.model, self.arith, meta))

    def _position(self):
        return self.model.batches_seen if self.arith == "float" else self.model.samples_seen

    def resume(self):
        p = load_npz(self.checkpoint)
        if p.arith != self.arith:
            raise ValueError(f"{self.checkpoint} holds a {p.arith} net; resume it with --arith {p.arith}")
        if p.cfg != self.cfg:
            raise ValueError(f"{self.checkpoint} was trained with config {p.cfg.name!r}, which differs from "
                             f"{self.cfg.name!r}; resume with the same config")
        self.model = make_model(self.cfg, self.arith, self.dtype, p)
        if self.arith == "float":
            self.model.batches_seen = p.meta["position"]
        else:
            self.model.samples_seen = p.meta["position"]
        self.history, self.epoch = p.meta["history"], p.meta["epoch"]
        if self.arith == "fixed" and self.history:     # the counters run on from the checkpoint's
            self.model.counters = Counters.from_dict(self.history[-1]["counters"])
        self.log(f"resumed from {self.checkpoint} after epoch {self.epoch}")

    # ---- one epoch ---------------------------------------------------------------------------
    def train_epoch(self) -> float:
        order = epoch_order(self.cfg, self.epoch, len(self.y_train))
        step = self.cfg.batch_size if self.arith == "float" else 1
        bar = _bar(len(order), f"epoch {self.epoch + 1}", self.progress)
        wrong = seen = 0
        for i in range(0, len(order), step):
            idx = order[i:i + step]
            x, labels = self.x_train[idx], self.y_train[idx]
            if self.arith == "float":
                y = torch.nn.functional.one_hot(labels, self.cfg.sizes[-1]).to(self.dtype)
                out = self.model.train_batch(x.to(self.dtype) / 256.0, y)
                wrong += int((out.argmax(1) != labels).sum())
            else:
                ph = self.model.train_sample(self.model.bytes_to_lsbs(x[0]), int(labels[0]))
                wrong += int(ph.free[-1][0, 0].argmax() != labels[0])
            seen += len(idx)
            bar.update(len(idx))
            if seen % (step * 200) == 0:
                bar.set_postfix(train_err=f"{wrong / seen:.4f}")
        bar.close()
        return wrong / max(seen, 1)

    def fit(self, epochs: int | None = None, resume: bool = False) -> dict:
        epochs = epochs or self.cfg.epochs
        if resume and self.checkpoint.exists():
            self.resume()
        elif resume:
            self.log(f"no checkpoint at {self.checkpoint}: starting afresh")
        try:
            while self.epoch < epochs:
                t0 = time.perf_counter()
                train_err = self.train_epoch()
                t_train = time.perf_counter() - t0
                test_err = test_error(self.model, self.arith, self.x_test, self.y_test)
                self.epoch += 1
                rec = {"epoch": self.epoch, "train_error": train_err, "test_error": test_err,
                       "train_seconds": t_train, "samples_per_s": len(self.y_train) / t_train}
                if self.arith == "fixed":
                    rec["counters"] = self.model.counters.as_dict()
                self.history.append(rec)
                self.save()
                self.log(f"epoch {self.epoch}/{epochs}: train error {100 * train_err:.2f}%, "
                         f"test error {100 * test_err:.2f}%, {rec['samples_per_s']:.0f} samples/s; "
                         f"checkpoint {self.checkpoint}")
        except KeyboardInterrupt:
            self.log(f"interrupted: the last checkpoint ({self.checkpoint}, epoch {self.epoch}) is intact")
            raise
        metrics = self.metrics()
        (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics

    def metrics(self) -> dict:
        last = self.history[-1] if self.history else {}
        return {"config": self.cfg.to_dict(), "arith": self.arith, "dtype": str(self.dtype),
                "train_samples": len(self.y_train), "test_samples": len(self.y_test),
                "epochs": self.epoch, "final_test_error": last.get("test_error"),
                "final_train_error": last.get("train_error"), "history": self.history}


def _bar(total, desc, enabled):
    from tqdm import tqdm
    if not enabled:
        class _Null:
            def update(self, n): pass
            def set_postfix(self, **k): pass
            def close(self): pass
        return _Null()
    return tqdm(total=total, desc=desc, unit="sample", leave=False, mininterval=1.0)


def train(cfg: EPConfig, arith: str = "float", epochs: int | None = None, **kw) -> dict:
    """Train and return the metrics dict (see Trainer)."""
    resume = kw.pop("resume", False)
    return Trainer(cfg, arith, **kw).fit(epochs, resume=resume)
