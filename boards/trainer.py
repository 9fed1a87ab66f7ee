"""Training a board over its serial link: the API under ``eqfpga train``.

One code path for a real board and the simulated one: ``BoardTrainer`` talks to an
``eqfpga.boards.link.Device``, opened on a serial port (``/dev/ttyUSB0``) or on the pty of the
Verilator-simulated board (``eqfpga.sim.boardsim.SimBoard``). The three layers are the gateware
(``eqfpga.hdl.link``), this host interface, and the CLI (``eqfpga train``).

The run follows the fixed-point golden trainer (``eqfpga.golden.train``) sample for sample: the
same initial weights (the config's seed), the same per-epoch order, one sample at a time, and the
same random source (the host writes the config's seed into the board's seed register: the seed is
a runtime field, so a board built with another seed trains this config too), so the weights read
back from the board equal ``eqfpga golden train --arith fixed`` bit for bit (``check_golden=True``
runs the golden model beside the board and compares at every checkpoint).

Checkpoints (``<out>/checkpoint.npz``, the golden npz format, written atomically) hold the weights
read back from the board after every epoch and every ``checkpoint_every`` samples, with the
position in the run; ``resume=True`` loads them into the board, sets its sample counter and
continues mid-epoch if need be. Ctrl-C or a lost link stops the run with the last checkpoint intact.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from eqfpga.golden.config import EPConfig
from eqfpga.golden.data import MNIST, load_mnist
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.golden.fixedpoint import bytes_to_lsbs
from eqfpga.golden.train import _bar, epoch_order
from eqfpga.golden.weights import NetParams, load_npz, save_npz

from .link import Device, LinkError


class BoardMismatch(RuntimeError):
    """The board's results or state disagree with what the host expects."""


SIM_REPLY_TIMEOUT = 10.0     # seconds without a reply before the host resends, simulated board


def pixels_for(cfg: EPConfig, images: np.ndarray) -> np.ndarray:
    """MNIST bytes (value b / 256) -> UQ(0, input_frac) LSBs, as FixedEP.bytes_to_lsbs (floor)."""
    return bytes_to_lsbs(np.asarray(images, dtype=np.int64), cfg.fixed.input_frac)


class BoardTrainer:
    def __init__(self, device: Device, cfg: EPConfig, *, data: MNIST | None = None,
                 out_dir="runs/board", limit: int | None = None, test_limit: int | None = None,
                 progress: bool = True, log=print, chunk: int = 50,
                 checkpoint_every: int | None = None, check_golden: bool = False):
        if cfg.sizes[0] != 784 or cfg.sizes[-1] != 10:
            raise ValueError(f"config {cfg.name!r} has {cfg.sizes[0]} inputs and {cfg.sizes[-1]} outputs; "
                             "MNIST needs sizes = [784, ..., 10]")
        self.dev, self.cfg, self.log, self.progress = device, cfg, log, progress
        self.dev.check_config(cfg)
        data = data or load_mnist()
        n_train = min(limit or len(data.train_labels), len(data.train_labels))
        n_test = min(test_limit if test_limit is not None else len(data.test_labels), len(data.test_labels))
        self.x_train = pixels_for(cfg, data.train_images[:n_train])
        self.y_train = data.train_labels[:n_train].astype(np.int64)
        self.x_test = pixels_for(cfg, data.test_images[:n_test])
        self.y_test = data.test_labels[:n_test].astype(np.int64)
        self.out_dir = Path(out_dir)
        self.checkpoint = self.out_dir / "checkpoint.npz"
        self.chunk, self.checkpoint_every = max(1, chunk), checkpoint_every
        self.golden = FixedEP(cfg) if check_golden else None
        self.history: list = []
        self.epoch = 0          # completed epochs
        self.position = 0       # samples trained in the whole run (= the board's t)
        self.last_checkpoint = None

    # ---- state in and out ------------------------------------------------------------------
    def _load_into_board(self, weights, biases, t: int):
        self.dev.write_weights([np.asarray(w, dtype=np.int64) for w in weights],
                               [np.asarray(b, dtype=np.int64) for b in biases])
        self.dev.set_t(t)
        self.dev.set_seed(self.cfg.seed)
        self._check_seed()

    def _check_seed(self):
        seed = self.dev.seed()
        if seed != self.cfg.seed:
            raise BoardMismatch(f"the board's seed register holds {seed} but the config's seed is {self.cfg.seed}: "
                                "the board was reset or another host wrote it; resume from the last checkpoint")

    def start(self, resume: bool = False):
        """Load the board with the checkpoint (resume) or the config's initial weights."""
        if resume and self.checkpoint.exists():
            p = load_npz(self.checkpoint)
            if p.arith != "fixed":
                raise ValueError(f"{self.checkpoint} holds a {p.arith} net; a board trains fixed-point nets")
            if p.cfg != self.cfg:
                raise ValueError(f"{self.checkpoint} was trained with config {p.cfg.name!r}, which differs "
                                 f"from {self.cfg.name!r}; resume with the same config")
            self.history, self.epoch = p.meta.get("history", []), p.meta.get("epoch", 0)
            self.position = p.meta.get("position", 0)
            weights, biases = [w.numpy() for w in p.weights], [b.numpy() for b in p.biases]
            self.log(f"resumed from {self.checkpoint}: epoch {self.epoch}, {self.position} samples trained")
        else:
            if resume:
                self.log(f"no checkpoint at {self.checkpoint}: starting afresh")
            init = FixedEP(self.cfg)
            weights = [w[0].numpy() for w in init.weights]
            biases = [b[0].numpy() for b in init.biases]
        if self.golden is not None:
            self.golden = FixedEP(self.cfg, weights=[torch.as_tensor(w)[None] for w in weights],
                                  biases=[torch.as_tensor(b)[None] for b in biases])
            self.golden.samples_seen = self.position
        t0 = time.perf_counter()
        self._load_into_board(weights, biases, self.position)
        self.log(f"loaded {sum(w.size + b.size for w, b in zip(weights, biases)):,} parameters into the "
                 f"board in {time.perf_counter() - t0:.1f} s")

    def save(self, record: dict | None = None) -> dict:
        """Read the weights back from the board and checkpoint them atomically.

        ``record`` (this epoch's history entry) receives the read-back time and the golden check
        before the checkpoint is written, so the file holds them too."""
        t0 = time.perf_counter()
        weights, biases = self.dev.read_weights()
        read_s = time.perf_counter() - t0
        t = self.dev.counters()["t"]
        if t != self.position:
            raise BoardMismatch(f"the board's sample counter is {t} but the host sent {self.position} training "
                             "samples: samples were lost or repeated; resume from the last checkpoint")
        self._check_seed()
        info = {"read_back_seconds": read_s}
        if self.golden is not None:
            info["golden_identical"] = self._compare_golden(weights, biases)
        if record is not None:
            record.update(info)
        meta = {"epoch": self.epoch, "history": self.history, "arith": "fixed", "position": self.position,
                "source": "board"}
        save_npz(self.checkpoint, NetParams(self.cfg, "fixed", [torch.as_tensor(w) for w in weights],
                                            [torch.as_tensor(b) for b in biases], meta))
        self.last_checkpoint = {"epoch": self.epoch, "position": self.position}
        return info

    def _compare_golden(self, weights, biases) -> bool:
        for n in range(self.cfg.n_layers):
            for name, mine, gold in (("W", weights[n], self.golden.weights[n][0].numpy()),
                                     ("b", biases[n], self.golden.biases[n][0].numpy())):
                if not np.array_equal(np.asarray(mine), gold):
                    idx = tuple(int(i) for i in np.argwhere(np.asarray(mine) != gold)[0])
                    raise BoardMismatch(f"after {self.position} samples the board's {name}{n}{list(idx)} = "
                                     f"{int(np.asarray(mine)[idx])} but the golden model has {int(gold[idx])}")
        return True

    # ---- training and scoring ------------------------------------------------------------------
    def train_epoch(self) -> tuple[float, float]:
        n = len(self.y_train)
        order = epoch_order(self.cfg, self.epoch, n).numpy()
        start = self.position - self.epoch * n          # > 0 when resuming mid-epoch
        bar = _bar(n, f"epoch {self.epoch + 1}", self.progress)
        bar.update(start)
        wrong = seen = 0
        t0 = time.perf_counter()
        paused = 0.0            # mid-epoch checkpoints: not training time
        next_ckpt = self.position + self.checkpoint_every if self.checkpoint_every else None
        for i in range(start, n, self.chunk):
            idx = order[i:i + self.chunk]
            preds = self.dev.train_many(self.x_train[idx], self.y_train[idx])
            if self.golden is not None:
                for j in idx:
                    self.golden.train_sample(torch.from_numpy(self.x_train[j]), int(self.y_train[j]))
            wrong += int((np.asarray(preds) != self.y_train[idx]).sum())
            seen += len(idx)
            self.position += len(idx)
            bar.update(len(idx))
            bar.set_postfix(train_err=f"{wrong / seen:.4f}")
            if next_ckpt is not None and self.position >= next_ckpt and i + self.chunk < n:
                p0 = time.perf_counter()
                self.save()
                paused += time.perf_counter() - p0
                next_ckpt = self.position + self.checkpoint_every
        bar.close()
        return wrong / max(seen, 1), time.perf_counter() - t0 - paused

    def test_error(self) -> float:
        preds = []
        for i in range(0, len(self.y_test), self.chunk):
            preds.append(np.asarray(self.dev.infer_many(self.x_test[i:i + self.chunk])))
        if not preds:
            return float("nan")
        return float((np.concatenate(preds) != self.y_test).mean())

    def fit(self, epochs: int | None = None, resume: bool = False) -> dict:
        epochs = epochs or self.cfg.epochs
        self.start(resume)
        try:
            while self.epoch < epochs:
                c0 = self.dev.counters()
                train_err, t_train = self.train_epoch()
                c1 = self.dev.counters()
                t1 = time.perf_counter()
                test_err = self.test_error()
                t_test = time.perf_counter() - t1
                self.epoch += 1
                trained = c1["samples"] - c0["samples"]
                rec = {"epoch": self.epoch, "train_error": train_err, "test_error": test_err,
                       "train_seconds": t_train, "samples_per_s": trained / t_train if t_train else None,
                       "test_seconds": t_test, "device_cycles_per_sample":
                           (c1["cycles"] - c0["cycles"]) / trained if trained else None,
                       "counters": c1}
                self.history.append(rec)
                self.save(rec)
                self.log(f"epoch {self.epoch}/{epochs}: train error {100 * train_err:.2f}%, test error "
                         f"{100 * test_err:.2f}% (on the board), {rec['samples_per_s']:.1f} samples/s"
                         + (", weights bit-identical to the golden model" if rec.get("golden_identical") else "")
                         + f"; checkpoint {self.checkpoint}")
        except KeyboardInterrupt:
            self.log(f"interrupted: {self._kept()}")
            raise
        except (LinkError, OSError) as e:
            raise LinkError(f"{e}\nthe link was lost: {self._kept()}; rerun with --resume") from None
        metrics = self.metrics()
        (self.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics

    def _kept(self) -> str:
        if self.last_checkpoint is None and not self.checkpoint.exists():
            return "no checkpoint was written yet"
        where = self.last_checkpoint or {"epoch": "?", "position": "?"}
        return (f"the last checkpoint ({self.checkpoint}, epoch {where['epoch']}, "
                f"{where['position']} samples) is intact")

    def metrics(self) -> dict:
        last = self.history[-1] if self.history else {}
        return {"config": self.cfg.to_dict(), "arith": "fixed", "source": "board",
                "device": self.dev.info(), "train_samples": len(self.y_train),
                "test_samples": len(self.y_test), "epochs": self.epoch,
                "final_test_error": last.get("test_error"), "final_train_error": last.get("train_error"),
                "history": self.history}


def train_board(port: str | None, cfg: EPConfig | None = None, *, baud: int = 3_000_000, sim: bool = False,
                divisor: int = 4, epochs: int | None = None, resume: bool = False, seed: int | None = None,
                **kw) -> dict:
    """Train a board on MNIST over its serial link (``port``), or the simulated board (``sim``).

    ``cfg`` None reads the config from the board. ``seed``: train with this seed instead of the
    config's (a runtime field: the same bitstream; the simulated board is built with the config's
    seed and told this one). Returns the metrics (also in ``<out>/metrics.json``).
    """
    def with_seed(c):
        return c if seed is None else c.replace(seed=seed)

    if sim:
        if cfg is None:
            raise ValueError("--sim needs a config: the simulated board is built from it")
        from eqfpga.sim.boardsim import SimBoard
        # a simulated board runs thousands of times slower than a real one, slower still on a busy
        # machine: wait longer for a reply before resending (a real board answers in milliseconds)
        with SimBoard(cfg, divisor=divisor) as board, Device.open(board.port, baud, timeout=SIM_REPLY_TIMEOUT) as dev:
            return BoardTrainer(dev, with_seed(cfg), **kw).fit(epochs, resume)
    if port is None:
        raise ValueError("give --port DEVICE (e.g. /dev/ttyUSB0) or --sim")
    with Device.open(port, baud) as dev:
        cfg = with_seed(cfg or dev.config())
        return BoardTrainer(dev, cfg, **kw).fit(epochs, resume)
