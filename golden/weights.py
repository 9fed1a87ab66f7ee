"""A net's parameters in and out: npz (numpy, with the config inside) and torch state_dict.

Both formats name layer n's parameters ``layers.{n}.weight`` (out x in) and ``layers.{n}.bias`` as
torch.nn.Linear does; a net with learned feedback (``feedback = "learned"``) adds
``layers.{n}.feedback``, B_n shaped as W_n^T, for n = 1 .. N-1. Fixed-point files hold integer LSBs
(``arith = "fixed"``), float files floats.
Writes are atomic (temporary file, then rename): an interrupted save never damages the old file.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import EPConfig


class WeightsError(ValueError):
    """A weights file is unreadable or does not match the config."""


@dataclass
class NetParams:
    cfg: EPConfig
    arith: str                       # "float" or "fixed"
    weights: list                    # torch tensors, (out, in) each
    biases: list
    meta: dict = field(default_factory=dict)   # epoch, samples_seen, history, ...
    feedback: list = field(default_factory=list)   # B_1 .. B_{N-1} of learned feedback, else []


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _check_shapes(cfg: EPConfig, weights, biases, source, feedback=()):
    if len(weights) != cfg.n_layers or len(biases) != cfg.n_layers:
        raise WeightsError(f"{source}: {len(weights)} weight layers, config {cfg.name!r} has {cfg.n_layers}")
    for n, (w, b) in enumerate(zip(weights, biases)):
        want = (cfg.sizes[n + 1], cfg.sizes[n])
        if tuple(w.shape) != want or tuple(b.shape) != want[:1]:
            raise WeightsError(f"{source}: layer {n} has weight {tuple(w.shape)} and bias {tuple(b.shape)}, "
                               f"config {cfg.name!r} needs {want} and {want[:1]}")
    want_fb = cfg.n_layers - 1 if cfg.feedback == "learned" else 0
    if len(feedback) != want_fb:
        raise WeightsError(f"{source}: {len(feedback)} feedback matrices, config {cfg.name!r} (feedback = "
                           f"{cfg.feedback!r}) has {want_fb}")
    for n, m in enumerate(feedback, start=1):
        if tuple(m.shape) != (cfg.sizes[n], cfg.sizes[n + 1]):
            raise WeightsError(f"{source}: feedback {n} has shape {tuple(m.shape)}, config {cfg.name!r} needs "
                               f"{(cfg.sizes[n], cfg.sizes[n + 1])}")


def save_npz(path, p: NetParams) -> None:
    _check_shapes(p.cfg, p.weights, p.biases, str(path), p.feedback)
    arrays = {}
    for n, (w, b) in enumerate(zip(p.weights, p.biases)):
        arrays[f"layers.{n}.weight"] = w.detach().cpu().numpy()
        arrays[f"layers.{n}.bias"] = b.detach().cpu().numpy()
    for n, m in enumerate(p.feedback, start=1):
        arrays[f"layers.{n}.feedback"] = m.detach().cpu().numpy()
    header = json.dumps({"config": p.cfg.to_dict(), "arith": p.arith, "meta": p.meta})

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, __header__=np.frombuffer(header.encode(), dtype=np.uint8), **arrays)
    _atomic_write(Path(path), write)


def load_npz(path, cfg: EPConfig | None = None) -> NetParams:
    try:
        with np.load(path) as z:
            header = json.loads(bytes(z["__header__"]).decode())
            file_cfg = EPConfig.from_dict(header["config"])
            n = file_cfg.n_layers
            weights = [torch.from_numpy(z[f"layers.{k}.weight"].copy()) for k in range(n)]
            biases = [torch.from_numpy(z[f"layers.{k}.bias"].copy()) for k in range(n)]
            feedback = [torch.from_numpy(z[f"layers.{k}.feedback"].copy()) for k in range(1, n)
                        if file_cfg.feedback == "learned"]
    except (OSError, ValueError, KeyError) as e:
        raise WeightsError(f"{path}: not an eqfpga weights file ({e})") from None
    use = cfg or file_cfg
    _check_shapes(use, weights, biases, str(path), feedback)
    return NetParams(use, header["arith"], weights, biases, header.get("meta", {}), feedback)


def save_state_dict(path, p: NetParams) -> None:
    """torch.save of {'layers.n.weight': ..., 'layers.n.bias': ...} plus '_eqfpga' metadata."""
    sd = {}
    for n, (w, b) in enumerate(zip(p.weights, p.biases)):
        sd[f"layers.{n}.weight"], sd[f"layers.{n}.bias"] = w.detach().clone(), b.detach().clone()
    for n, m in enumerate(p.feedback, start=1):
        sd[f"layers.{n}.feedback"] = m.detach().clone()
    sd["_eqfpga"] = {"config": p.cfg.to_dict(), "arith": p.arith, "meta": p.meta}
    _atomic_write(Path(path), lambda tmp: torch.save(sd, tmp))


def load_state_dict(path, cfg: EPConfig | None = None) -> NetParams:
    """Load a state_dict saved by eqfpga, or a plain one (then ``cfg`` is required, arith float)."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds on bad files
        raise WeightsError(f"{path}: not a torch state_dict ({e})") from None
    info = sd.pop("_eqfpga", None)
    if cfg is None:
        if info is None:
            raise WeightsError(f"{path}: a plain state_dict needs the config it belongs to")
        cfg = EPConfig.from_dict(info["config"])
    try:
        weights = [sd[f"layers.{k}.weight"] for k in range(cfg.n_layers)]
        biases = [sd[f"layers.{k}.bias"] for k in range(cfg.n_layers)]
    except KeyError as e:
        raise WeightsError(f"{path}: missing {e}; expected keys layers.N.weight / layers.N.bias") from None
    feedback = [sd[key] for key in (f"layers.{k}.feedback" for k in range(1, cfg.n_layers)) if key in sd]
    _check_shapes(cfg, weights, biases, str(path), feedback)
    return NetParams(cfg, info["arith"] if info else "float", weights, biases, info["meta"] if info else {},
                     feedback)


def load_params(path, cfg: EPConfig | None = None) -> NetParams:
    """npz or state_dict, by file name."""
    return load_npz(path, cfg) if str(path).endswith(".npz") else load_state_dict(path, cfg)


def save_params(path, p: NetParams) -> None:
    (save_npz if str(path).endswith(".npz") else save_state_dict)(path, p)
