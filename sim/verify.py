"""Long-run, bit-exact verification of the RTL core against the golden FixedEP.

``verify(cfg, samples=N)`` trains the core (the free-running Verilator harness of
``eqfpga.sim.fastsim``) on the first N training samples beside ``FixedEP``, both from the same
initial parameters and sample counter. After every sample the checksum of all weights and biases
(computed in C++ from the RTL's memories, and by the same function in Python on FixedEP's tensors)
and the prediction are compared; every ``check_every`` samples and at the end, every weight, bias
and counter. The harness runs each batch while Python runs the golden model on it (2 processes).

On a mismatch the run is replayed from the last fully checked point (those parameters loaded into
both, t set) up to the first bad sample, which then runs alone, with the core's state memories
snapshotted after every step (``Plan.state_ready_offsets``, ``Plan.step_slots``, the memory views
of ``eqfpga.hdl.memory_map``); the report names the first divergence: sample, phase, step, layer,
index and both values (parameters before the sample, input drive, the states after each step of
each phase, the phase states read back through the access port, the prediction, the updated
parameters, the counters).

Optionally (``test=True``) the core then classifies the 10,000 MNIST test images (learn = 0); its
test error must equal ``FixedEP.error_rate``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from eqfpga.golden.config import EPConfig, load_config
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.golden.fixedpoint import bytes_to_lsbs
from eqfpga.hdl.core import Access
from eqfpga.hdl.plan import Plan

from .build_cache import config_tag
from .compare import first_param_diff, first_state_diff
from .fastsim import FastSim, element_hashes, flat_params, wave_format
from .paths import build_dir

# golden counters compared with the core's outputs of the same name (those the core has)
COUNTER_KEYS = ("update_sat", "weight_sat", "bias_sat", "act_low", "act_high", "unsettled", "cycling")


class VerifyError(ValueError):
    pass


# ---- data ----------------------------------------------------------------------------------------
def _as_lsbs(images, cfg: EPConfig, from_bytes: bool) -> np.ndarray:
    """Pixels as UQ(0, input_frac) integer LSBs: MNIST bytes are converted exactly as
    FixedEP.encode_input converts bytes/256 (floor(b * 2**(fx - 8)))."""
    fx = cfg.fixed.input_frac
    x = np.asarray(images)
    if x.dtype.kind == "f":
        raise VerifyError("images must be integer pixels (UQ(0, input_frac) LSBs, or MNIST bytes)")
    x = x.astype(np.int64).reshape(len(x), -1)
    if from_bytes and fx != 8:
        x = bytes_to_lsbs(x, fx)
    if x.size and (x.min() < 0 or x.max() > (1 << fx) - 1):
        raise VerifyError(f"pixels must lie in 0..{(1 << fx) - 1} (UQ(0, {fx}) LSBs), "
                          f"got {x.min()}..{x.max()}")
    if x.shape[1] != cfg.sizes[0]:
        raise VerifyError(f"samples have {x.shape[1]} pixels but config {cfg.name!r} has "
                          f"{cfg.sizes[0]} inputs")
    return x


def _labels(labels, cfg) -> np.ndarray:
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= cfg.sizes[-1]):
        raise VerifyError(f"labels must lie in 0..{cfg.sizes[-1] - 1}")
    return y


def _dataset(data, cfg, samples):
    """(train_x, train_y, test_x, test_y or None): from MNIST (data=None or an MNIST object) or
    from a (images, labels) pair (integer LSBs)."""
    if data is None:
        from eqfpga.golden.data import load_mnist
        data = load_mnist()
    if hasattr(data, "train_images"):
        if samples > len(data.train_labels):
            raise VerifyError(f"samples = {samples} but the training set has {len(data.train_labels)}")
        tx = _as_lsbs(data.train_images[:samples], cfg, True)
        ty = _labels(data.train_labels[:samples], cfg)
        return tx, ty, (data.test_images, data.test_labels, True)
    images, labels = data
    if samples > len(labels):
        raise VerifyError(f"samples = {samples} but the data hold {len(labels)}")
    return _as_lsbs(images[:samples], cfg, False), _labels(labels[:samples], cfg), None


# ---- golden side ---------------------------------------------------------------------------------
def _gparams(g: FixedEP):
    return [w[0].numpy() for w in g.weights], [b[0].numpy() for b in g.biases]


class GoldenChecksum:
    """The harness's checksum of FixedEP's parameters, kept up to date incrementally (only the
    parameters an update changed are re-hashed)."""

    def __init__(self, g: FixedEP):
        self.g = g
        self.v = flat_params(*_gparams(g))
        self.pos = np.arange(self.v.size, dtype=np.int64)
        self.h = element_hashes(self.v, self.pos)
        with np.errstate(over="ignore"):
            self.total = self.h.sum(dtype=np.uint64)

    def update(self) -> int:
        v = flat_params(*_gparams(self.g))
        idx = np.flatnonzero(v != self.v)
        if idx.size:
            new = element_hashes(v[idx], idx)
            with np.errstate(over="ignore"):
                self.total = self.total - self.h[idx].sum(dtype=np.uint64) + new.sum(dtype=np.uint64)
            self.h[idx] = new
            self.v = v
        return int(self.total)


def _golden_counters(g: FixedEP) -> dict:
    c = g.counters.as_dict()
    return {k: (sum(c[k]) if isinstance(c[k], list) else c[k]) for k in COUNTER_KEYS if k in c}


def _counter_diff(rtl: dict, gold: dict, rtl0: dict | None = None, gold0: dict | None = None) -> dict:
    """{name: (rtl, golden)} of the counters both sides have that differ (optionally as the
    increments since rtl0 / gold0)."""
    bad = {}
    for k in COUNTER_KEYS:
        if k in rtl and k in gold:
            r = rtl[k] - (rtl0[k] if rtl0 else 0)
            v = gold[k] - (gold0[k] if gold0 else 0)
            if r != v:
                bad[k] = (r, v)
    return bad


def _layer_counter_diff(fs, g) -> dict:
    """{name[n]: (rtl, golden)} of the per-layer counters that differ (if the core has them)."""
    lc = fs.layer_counters()
    if lc is None:
        return {}
    gc = g.counters.as_dict()
    return {f"{k}[{n}]": (v, gc[k][n]) for k, vals in lc.items() if k in gc
            for n, v in enumerate(vals) if v != gc[k][n]}


# ---- one sample, traced step by step ---------------------------------------------------------
def snapshot_offsets(cfg, x, learn):
    """Cycle offsets (the core's ``cycles`` counter from the sample's start) at which the states
    of every step are in the state memories (``Plan.state_ready_offsets`` for x's non-zero pixels),
    in the order of ``Plan.step_slots``."""
    return Plan(cfg).state_ready_offsets(int(np.count_nonzero(x)), learn)


def trace_sample(fs: FastSim, g: FixedEP, x, y: int, *, learn: bool = True, wave=None):
    """Run one sample on the harness (state and d0 memories snapshotted after every step) and on
    FixedEP (``phases(keep_trace=True)``; g learns when ``learn``). Compares, in this order: the input
    drive, the states after each step of each phase, the phase states read back through the
    access port, the prediction, the updated weights and biases, this sample's counters.
    Returns the first divergence (dict: phase, step, what, layer, index, rtl, golden) or None."""
    cfg = g.cfg
    x = np.asarray(x, np.int64).reshape(-1)
    xt = torch.from_numpy(x).view(1, -1)
    xi = g.encode_input(xt)
    d0_gold = g.input_drive(xi)[0, 0].numpy()
    c_before = fs.counters()
    gcount0 = _golden_counters(g)
    if wave is not None:
        Path(wave).parent.mkdir(parents=True, exist_ok=True)
        fs.wave(wave)
    rt = fs.run_snapshots(x, y, snapshot_offsets(cfg, x, learn), learn=learn)
    if wave is not None:
        fs.wave(None)
    if learn:
        ph = g.train_sample(xt.view(-1), y, keep_trace=True)
    else:
        yt = g.encode_target(torch.as_tensor([y]))
        ph = g.phases(xi, yt, g.sign_for_sample(g.samples_seen), keep_trace=True)
    if rt["snapshots"]:
        d0_rtl = fs.decode_d0(rt["snapshots"][0])
        d = np.flatnonzero(d0_rtl != d0_gold)
        if len(d):
            i = int(d[0])
            return {"phase": "input_drive", "step": None, "what": "input drive d0", "layer": 1,
                    "index": [i], "rtl": int(d0_rtl[i]), "golden": int(d0_gold[i])}
    slots = Plan(cfg).step_slots(learn)
    if len(rt["snapshots"]) != len(slots):
        return {"phase": "schedule", "step": None, "what": "sample length (cycles)", "layer": None,
                "index": None, "rtl": rt["cycles"],
                "golden": Plan(cfg).sample_cycles(int(np.count_nonzero(x)), learn=learn)["total"]}
    for (phase, step, slot), snap, gold in zip(slots, rt["snapshots"], ph.trace):
        d = first_state_diff(fs.decode_states(snap, slot), [v[0, 0].numpy() for v in gold])
        if d:
            k, i, rv, gv = d
            return {"phase": phase, "step": step, "what": "state", "layer": k, "index": [i],
                    "rtl": rv, "golden": gv}
    phases = [("free", ph.free)] + ([("nudged", ph.nudged)] if learn else [])
    if learn and ph.negative is not None:
        phases.append(("negative", ph.negative))
    for name, states in phases:
        d = first_state_diff(fs.read_states(name), [v[0, 0].numpy() for v in states])
        if d:
            k, i, rv, gv = d
            return {"phase": name, "step": "final (read back)", "what": "state", "layer": k,
                    "index": [i], "rtl": rv, "golden": gv}
    gp = int(ph.free[-1][0, 0].argmax())
    if rt["pred"] != gp:
        return {"phase": "prediction", "step": None, "what": "prediction", "layer": cfg.n_layers,
                "index": None, "rtl": rt["pred"], "golden": gp}
    if learn:
        d = first_param_diff(fs.dump_params(), _gparams(g))
        if d:
            return {"phase": "update", "step": None, **d.as_dict()}
        bad = _counter_diff(fs.counters(), _golden_counters(g), c_before, gcount0)
        for c, (rv, gv) in bad.items():
            return {"phase": "counters", "step": None, "what": f"counter {c} (this sample)",
                    "layer": None, "index": None, "rtl": rv, "golden": gv}
    return None


# ---- the run -------------------------------------------------------------------------------------
class _Run:
    def __init__(self, cfg, tx, ty, *, check_every, wave, log, t0, inject, batch, root, out_dir):
        self.cfg, self.tx, self.ty = cfg, tx, ty
        self.check_every, self.wave, self.log, self.t0 = max(1, int(check_every)), wave, log, int(t0)
        self.inject = {}
        for ev in inject or ():
            k, kind, layer, *idx, bit = ev
            if kind not in ("W", "b"):
                raise VerifyError(f"inject events are (sample, 'W'|'b', layer, index..., bit), not {ev!r}")
            self.inject.setdefault(int(k), []).append((kind, int(layer), tuple(int(v) for v in idx), int(bit)))
        self.batch = batch
        self.root = root
        self.out_dir = Path(out_dir)
        self.waves = []
        self.rtl_seconds = 0.0
        self.rtl_clocks = 0
        self.golden_seconds = 0.0
        self.cycles = []

    def _log(self, msg):
        if self.log:
            self.log(msg)

    # RTL-only corruption (the mutation test): flip one bit of a stored weight or bias
    def _apply_injections(self, fs, k):
        f = self.cfg.fixed
        for kind, layer, idx, bit in self.inject.get(k, ()):
            if kind == "W":
                i, j = idx
                op_r, op_w, width = Access.READ_WEIGHT.value, Access.WRITE_WEIGHT.value, f.weight_bits
            else:
                (i,), j = idx, 0
                op_r, op_w, width = Access.READ_BIAS.value, Access.WRITE_BIAS.value, f.bias_bits
            v = int(fs.access([(op_r, layer, i, j, 0)])[0])
            u = (v & ((1 << width) - 1)) ^ (1 << bit)
            u -= (1 << width) if u >> (width - 1) else 0
            fs.access([(op_w, layer, i, j, u)])
            self._log(f"  injected: {kind}{layer}{list(idx)} bit {bit}: {v} -> {u} (RTL only) before sample {k}")

    def _segments(self, start, stop):
        """Batch boundaries: full checks, injections, batch size."""
        k = start
        while k < stop:
            end = min(stop, (k // self.check_every + 1) * self.check_every, k + self.batch)
            nxt = [e for e in self.inject if k < e < end]
            if nxt:
                end = min(nxt)
            yield k, end
            k = end

    def train(self, fs, g, start, stop, *, record=True):
        """Train samples [start, stop) on both; returns the first bad sample (or None) and why."""
        gsum = GoldenChecksum(g)
        for a, b in self._segments(start, stop):
            self._apply_injections(fs, a)
            fs.submit(self.tx[a:b], self.ty[a:b], learn=True, checksum=True)
            t = time.perf_counter()
            gp, gc = np.empty(b - a, np.int64), np.empty(b - a, np.uint64)
            for s in range(a, b):
                ph = g.train_sample(torch.from_numpy(self.tx[s]), int(self.ty[s]))
                gp[s - a] = int(ph.free[-1][0, 0].argmax())
                gc[s - a] = gsum.update()
            if record:
                self.golden_seconds += time.perf_counter() - t
            r = fs.collect()
            if record:
                self.rtl_seconds += r["seconds"]
                self.rtl_clocks += r["clocks"]
                self.cycles.append(r["cycles"])
            bad_cs = np.flatnonzero(r["checksum"] != gc)
            bad_p = np.flatnonzero(r["pred"] != gp)
            if len(bad_cs) or len(bad_p):
                first = min([int(v) for v in bad_cs[:1]] + [int(v) for v in bad_p[:1]])
                why = "checksum" if len(bad_cs) and bad_cs[0] == first else "prediction"
                return a + first, why, {"rtl_pred": int(r["pred"][first]), "golden_pred": int(gp[first]),
                                        "rtl_checksum": int(r["checksum"][first]),
                                        "golden_checksum": int(gc[first])}
            if record and (b % self.check_every == 0 or b == stop):
                chk = self.full_check(fs, g, b)
                if chk is not None:
                    return b, "full check", chk
            if record:
                self.progress(b)
        return None

    def progress(self, k):
        if k % self.check_every == 0 or k == len(self.ty):
            el = time.perf_counter() - self.t_start
            self._log(f"  {k:>6} samples bit-exact  ({el:.0f} s, {1000 * el / max(k, 1):.1f} s/1000 samples)")

    def full_check(self, fs, g, k):
        """Every weight, bias and counter at sample k; on success k becomes the replay point."""
        d = first_param_diff(fs.dump_params(), _gparams(g))
        if d is not None:
            return {"param": d.as_dict()}
        rc = fs.counters()
        bad = _counter_diff(rc, _golden_counters(g))
        bad.update(_layer_counter_diff(fs, g))
        if rc["t"] != (self.t0 + k) & 0xFFFFFFFF:
            bad["t"] = (rc["t"], self.t0 + k)
        if rc["samples"] != k:
            bad["samples"] = (rc["samples"], k)
        if bad:
            return {"counters": bad}
        self.good = (k, [w.clone() for w in g.weights], [b.clone() for b in g.biases])
        self.checks += 1
        return None

    # ---- diagnosis ----
    def trace_sample(self, fs, g, s, learn=True):
        """Run sample s alone on both (FixedEP g is updated when learning); the first divergence."""
        x, y = (self.tx[s], self.ty[s]) if learn else (self.test_x[s], self.test_y[s])
        wpath = None
        if self.wave:
            wpath = self.out_dir / f"{'train' if learn else 'test'}-sample{s}.{wave_format()}"
            self.waves.append(str(wpath))
        d = trace_sample(fs, g, x, int(y), learn=learn, wave=wpath)
        return None if d is None else {"sample": s, "set": "train" if learn else "test", **d}

    def diagnose(self, fs, bad, why):
        """Replay from the last good full check to the first bad sample and name the divergence."""
        k0, W, B = self.good
        self._log(f"  mismatch ({why}) at sample {bad}: replaying from the last full check, sample {k0}")
        g = FixedEP(self.cfg, weights=[w.clone() for w in W], biases=[b.clone() for b in B])
        g.samples_seen = self.t0 + k0
        fs.write_params(*_gparams(g))
        fs.set_t(self.t0 + k0)
        if bad > k0:
            res = self.train(fs, g, k0, bad, record=False)
            if res is not None:
                self._log(f"  the replay diverged earlier, at sample {res[0]} ({res[1]})")
                bad = res[0]
                # rebuild the state at the new first bad sample
                g = FixedEP(self.cfg, weights=[w.clone() for w in W], biases=[b.clone() for b in B])
                g.samples_seen = self.t0 + k0
                fs.write_params(*_gparams(g))
                fs.set_t(self.t0 + k0)
                if bad > k0:
                    if self.train(fs, g, k0, bad, record=False) is not None:
                        return {"sample": bad, "phase": "replay", "what": "the replay is not reproducible",
                                "step": None, "layer": None, "index": None, "rtl": None, "golden": None}
        self._apply_injections(fs, bad)
        d = first_param_diff(fs.dump_params(), _gparams(g))
        if d:
            return {"sample": bad, "set": "train", "phase": "before the sample (parameters)", "step": None,
                    **d.as_dict()}
        return self.trace_sample(fs, g, bad, learn=True)


def describe(d: dict | None) -> str:
    if d is None:
        return "none"
    parts = [f"sample {d.get('sample')}"]
    if d.get("set") == "test":
        parts[0] = f"test image {d.get('sample')}"
    parts.append(f"phase {d.get('phase')}")
    if d.get("step") is not None:
        parts.append(f"step {d['step']}")
    what = d.get("name") or d.get("what")
    if d.get("what") == "state":
        what = f"state s{d['layer']}[{d['index'][0]}]"
    elif d.get("what") == "input drive d0":
        what = f"input drive d0[{d['index'][0]}] (layer 1)"
    parts.append(str(what))
    parts.append(f"RTL {d.get('rtl')} vs golden {d.get('golden')}")
    return ", ".join(parts)


def verify(cfg, samples: int = 1000, data=None, *, check_every: int = 1000, wave: bool = False,
           log=print, test=False, t0: int = 0, inject=None, batch: int = 250, weights=None, biases=None,
           root=None, out_dir=None) -> dict:
    """Train the RTL core beside FixedEP on ``samples`` samples and compare them bit for bit.

    cfg: an EPConfig, a preset name or a JSON file. data: None (MNIST, the first N training
    images), an ``MNIST`` object, or an (images, labels) pair of integer arrays (pixels as
    UQ(0, input_frac) LSBs). test: also classify the test set on the RTL (learn = 0) and compare
    with FixedEP.error_rate: True for MNIST's 10,000 test images (or the MNIST object's), an
    (images, labels) pair, or False. inject: RTL-only corruptions for the mutation test, events
    (sample, 'W', layer, i, j, bit) or (sample, 'b', layer, i, bit) flipping one bit of the stored
    value through the access port just before that sample. wave: build with waveform support and
    dump the first sample (and a diagnosed one) as FST or VCD into ``out_dir``
    (default ``build_dir("verify", <config tag>)``). weights, biases: initial parameters as FixedEP takes them
    (default: FixedEP's own initialisation from the config's seed); t0: initial sample counter. log: a callable taking a line (None:
    quiet). Returns the report dict (``bit_exact``, ``first_mismatch``, speeds...).
    """
    cfg = load_config(cfg) if not isinstance(cfg, EPConfig) else cfg
    cfg.check_hardware()
    samples = int(samples)
    if samples < 0:
        raise VerifyError("samples must be >= 0")
    torch.set_num_threads(1)        # the harness has the other core
    tx, ty, mnist_test = _dataset(data, cfg, samples)
    out_dir = Path(out_dir) if out_dir else build_dir("verify", config_tag(cfg))
    run = _Run(cfg, tx, ty, check_every=check_every, wave=wave, log=log, t0=t0, inject=inject,
               batch=max(1, int(batch)), root=root, out_dir=out_dir)
    log = run._log
    wall0 = time.perf_counter()
    g = FixedEP(cfg, weights=weights, biases=biases)
    g.samples_seen = t0
    report = {"config": cfg.name, "sizes": list(cfg.sizes), "parallelism": cfg.parallelism,
              "samples": samples, "t0": t0, "check_every": run.check_every}
    log(f"eqfpga verify: {cfg.name} {list(cfg.sizes)} P={cfg.parallelism}, {samples} training samples, "
        f"RTL (Verilator, C++ harness) vs FixedEP")
    tb = time.perf_counter()
    with FastSim(cfg, wave=wave, root=root, quiet=run.log is None) as fs:
        report["build_and_start_s"] = round(time.perf_counter() - tb, 2)
        fs.write_params(*_gparams(g))
        fs.set_t(t0)
        run.checks = 0
        first = None
        d = first_param_diff(fs.read_params_access(), _gparams(g))
        if d is not None:
            first = {"sample": 0, "phase": "load (access port)", "step": None, **d.as_dict()}
            report["detected_by"] = "read back after load"
        run.good = (0, [w.clone() for w in g.weights], [b.clone() for b in g.biases])
        if wave and samples and first is None:
            # the first sample, dumped as it runs (it is then checked like every other)
            wpath = out_dir / f"train-sample0.{wave_format()}"
            wpath.parent.mkdir(parents=True, exist_ok=True)
            fs.wave(wpath)
        run.t_start = time.perf_counter()
        res = None
        if first is None and samples:
            if wave:
                res = run.train(fs, g, 0, 1)
                fs.wave(None)
                run.waves.append(str(wpath))
            if res is None:
                res = run.train(fs, g, 1 if wave else 0, samples)
        train_wall = time.perf_counter() - run.t_start
        if res is not None:
            bad, why, info = res
            report["detected_by"] = why
            report["detection"] = info
            if why == "full check" and "counters" in info:
                first = {"sample": bad, "phase": "counters", "step": None, "what": "counters",
                         "layer": None, "index": None, "rtl": {k: v[0] for k, v in info["counters"].items()},
                         "golden": {k: v[1] for k, v in info["counters"].items()}}
            else:
                if why == "full check":
                    # the checksums agreed but a full comparison did not: the sample is unknown
                    bad = run.good[0]
                first = run.diagnose(fs, bad, why)
                if first is None:
                    first = {"sample": bad, "phase": "not reproduced", "what": why, "step": None,
                             "layer": None, "index": None, "rtl": info.get("rtl_checksum"),
                             "golden": info.get("golden_checksum")}
        report["first_mismatch"] = first
        report["bit_exact"] = first is None
        cyc = np.concatenate(run.cycles) if run.cycles else np.zeros(0)
        report["samples_compared"] = int(cyc.size) if res is None else int(res[0])
        report["full_checks"] = run.checks
        report["cycles_per_sample"] = float(cyc.mean()) if cyc.size else None
        report["sim_cycles_per_s"] = run.rtl_clocks / run.rtl_seconds if run.rtl_seconds else None
        report["rtl_s"] = round(run.rtl_seconds, 2)
        report["golden_s"] = round(run.golden_seconds, 2)
        report["train_wall_s"] = round(train_wall, 2)
        n = max(int(cyc.size), 1)
        report["wall_s_per_1000"] = round(1000 * train_wall / n, 2)
        report["rtl_s_per_1000"] = round(1000 * run.rtl_seconds / n, 2)
        report["golden_s_per_1000"] = round(1000 * run.golden_seconds / n, 2)
        if first is None:
            report["counters"] = {"rtl": fs.counters(), "golden": _golden_counters(g),
                                  "rtl_per_layer": fs.layer_counters(),
                                  "golden_per_layer": {k: v for k, v in g.counters.as_dict().items()
                                                       if isinstance(v, list)}}
        # inference over the test set
        if test is not False and test is not None and report["bit_exact"]:
            if test is True:
                if mnist_test is None:
                    raise VerifyError("test=True needs MNIST data; pass test=(images, labels)")
                timg, tlab, from_bytes = mnist_test
            else:
                (timg, tlab), from_bytes = test, False
            run.test_x = _as_lsbs(timg, cfg, from_bytes)
            run.test_y = _labels(tlab, cfg)
            report["test"] = _test(run, fs, g)
            if report["test"]["first_mismatch"] is not None:
                report["bit_exact"] = False
                report["first_mismatch"] = report["test"]["first_mismatch"]
    report["waves"] = run.waves
    report["wall_s"] = round(time.perf_counter() - wall0, 2)
    log(summary(report))
    return report


def _test(run, fs, g):
    """Inference (learn = 0) over the test images on both; predictions must agree one by one."""
    log = run._log
    X, Y = run.test_x, run.test_y
    t_before = fs.counters()["t"]
    t0 = time.perf_counter()
    preds, gpreds, cycles, secs, clocks = [], [], [], 0.0, 0
    B = 1000
    for a in range(0, len(Y), B):
        fs.submit(X[a:a + B], Y[a:a + B], learn=False, checksum=False)
        gpreds.append(g.predict(torch.from_numpy(X[a:a + B]))[0].numpy())
        r = fs.collect()
        preds.append(r["pred"])
        cycles.append(r["cycles"])
        secs += r["seconds"]
        clocks += r["clocks"]
    p = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    gp = np.concatenate(gpreds) if gpreds else np.zeros(0, np.int64)
    cyc = np.concatenate(cycles) if cycles else np.zeros(0)
    golden_error = float(g.error_rate(torch.from_numpy(X), torch.from_numpy(Y))[0]) if len(Y) else None
    rtl_error = float((p != Y).mean()) if len(Y) else None
    out = {"images": int(len(Y)), "rtl_error": rtl_error, "golden_error": golden_error,
           "equal": rtl_error == golden_error and bool((p == gp).all()),
           "prediction_mismatches": int((p != gp).sum()),
           "cycles_per_image": float(cyc.mean()) if cyc.size else None,
           "sim_cycles_per_s": clocks / secs if secs else None,
           "wall_s": round(time.perf_counter() - t0, 2), "first_mismatch": None}
    if fs.counters()["t"] != t_before:
        out["first_mismatch"] = {"sample": None, "set": "test", "phase": "inference", "step": None,
                                 "what": "t changed during inference", "layer": None, "index": None,
                                 "rtl": fs.counters()["t"], "golden": t_before}
    elif (p != gp).any():
        s = int(np.flatnonzero(p != gp)[0])
        log(f"  test image {s}: RTL predicts {p[s]}, golden {gp[s]}: tracing it")
        out["first_mismatch"] = run.trace_sample(fs, g, s, learn=False) or {
            "sample": s, "set": "test", "phase": "prediction", "step": None, "what": "prediction",
            "layer": None, "index": None, "rtl": int(p[s]), "golden": int(gp[s])}
    return out


def summary(r: dict) -> str:
    lines = [f"config              {r['config']} {r['sizes']} P={r['parallelism']}",
             f"bit-exact           {'yes' if r['bit_exact'] else 'NO'}"
             f" ({r.get('samples_compared', 0)} of {r['samples']} training samples compared after every sample,"
             f" {r.get('full_checks', 0)} full checks)"]
    if r.get("first_mismatch") is not None:
        lines.append(f"first divergence    {describe(r['first_mismatch'])}"
                     + (f"  [detected by {r['detected_by']}]" if r.get("detected_by") else ""))
    if r.get("cycles_per_sample"):
        lines.append(f"RTL cycles/sample   {r['cycles_per_sample']:.1f} (mean of the core's cycles counter)")
    if r.get("sim_cycles_per_s"):
        lines.append(f"simulated cycles/s  {r['sim_cycles_per_s'] / 1e6:.2f} M")
    lines.append(f"wall time           {r.get('wall_s_per_1000')} s per 1000 samples (RTL {r.get('rtl_s_per_1000')} s, "
                 f"golden {r.get('golden_s_per_1000')} s, run concurrently); total {r.get('wall_s')} s, "
                 f"build/start {r.get('build_and_start_s')} s")
    t = r.get("test")
    if t:
        lines.append(f"test set            {t['images']} images: RTL error {100 * t['rtl_error']:.2f}%, golden "
                     f"FixedEP.error_rate {100 * t['golden_error']:.2f}% -> {'equal' if t['equal'] else 'DIFFERENT'}"
                     f" ({t['prediction_mismatches']} predictions differ, {t['cycles_per_image']:.0f} cycles/image, "
                     f"{t['wall_s']} s)")
    if r.get("waves"):
        lines.append("waveforms           " + ", ".join(r["waves"]))
    return "\n".join(lines)
