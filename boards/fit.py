"""The fit pre-check: refuse, before any tool runs, a config that cannot fit a device.

``precheck(cfg, device, train=True, link=False)`` compares the resource estimate
(:func:`eqfpga.hdl.resources.estimate`) with the part (:mod:`eqfpga.boards.devices`) and raises
:class:`DoesNotFit` naming every resource that is short, with the numbers. It refuses when

* the weight memories (plus, with ``link``, the serial link's buffer, FIFO and config ROM) need
  more block RAMs than the device has; on iCE40, which has no LUT RAM, also every memory together;
* the multipliers need more DSP blocks than it has;
* the logic estimate exceeds its LUT4s / logic cells.

``precheck_board(cfg, board)`` is the same for a board (link included). Both return the
:class:`~eqfpga.hdl.resources.Estimate`; :func:`precheck_record` is what a build report stores.
"""
from __future__ import annotations

from eqfpga.golden.config import load_config
from eqfpga.hdl.resources import Estimate, estimate

from .devices import Device, device as device_named
from .platforms import Board, resolve_board


class DoesNotFit(ValueError):
    """The config cannot fit the device (the message names the resource and the numbers)."""


def _config_name(cfg) -> str:
    return f"config {cfg.name!r} ({'-'.join(map(str, cfg.sizes))}, P={cfg.parallelism})"


def precheck(cfg, device: str | Device = "LFE5U-85F", *, train: bool = True, link: bool = False,
             where: str | None = None) -> Estimate:
    """The estimate of ``cfg`` on ``device``; DoesNotFit if it cannot fit (see the module docstring).

    ``where``: how the message names the target (default: the device name).
    """
    cfg = load_config(cfg)
    dev = device if isinstance(device, Device) else device_named(device)
    est = estimate(cfg, dev.family, train=train, link=link)
    fam = dev.family_info
    why = []
    ram = f"{fam.block_ram} block RAMs ({fam.block_ram_kbit} kbit"
    plus = f" plus {est.link_blocks} for the link's buffer, FIFO and config ROM" if link else ""
    spram = (f" (its {dev.spram} SPRAM banks cannot hold them: the core's memories are dual-port)"
             if dev.spram else "")
    if est.weight_blocks + est.link_blocks > dev.block_rams:
        detail = ", ".join(f"{k} {m.width}x{m.depth}{f' x {m.count} lanes' if m.count > 1 else ''} -> {m.blocks}"
                           for k, m in est.weight_memories.items())
        why.append(f"its weight memories need at least {est.weight_blocks} {ram}: {detail}){plus}, "
                   f"and the device has {dev.block_rams}{spram}")
    elif not fam.lut_ram and est.memory_blocks + est.link_blocks > dev.block_rams:
        detail = ", ".join(f"{k} -> {m.blocks}" for k, m in est.memories.items())
        why.append(f"its memories need at least {est.memory_blocks} {ram}: {detail}){plus}, "
                   f"and the device has {dev.block_rams}")
    if est.dsp_blocks > dev.dsps:
        parts = " + ".join(f"{g.count} {g.role.upper() if g.role == 'mac' else g.role} x {k}"
                           for g, k in zip(est.multipliers, est.dsp_per_multiplier))
        why.append(f"it needs {est.dsp_blocks} {fam.dsp} ({parts}{fam.dsp_note}) and the device has {dev.dsps}")
    if est.logic > dev.luts:
        what = "core and link" if link else "core"
        why.append(f"its logic ({what}) is estimated at {est.logic:,} {fam.logic_unit} and the device "
                   f"has {dev.luts:,}")
    if why:
        raise DoesNotFit(f"{_config_name(cfg)} does not fit {where or dev.name}: " + "; ".join(why))
    return est


def precheck_board(cfg, board, *, train: bool = True) -> Estimate:
    """:func:`precheck` of the whole board design (core and link) on ``board``'s device."""
    b = board if isinstance(board, Board) else resolve_board(board)
    return precheck(cfg, b.device, train=train, link=True, where=f"{b.name} ({b.device})")


def precheck_record(est: Estimate, dev: Device) -> dict:
    """The estimate and the device's resources, as a build report's ``precheck``."""
    return dict(est.to_dict(), device=dev.name, available=dev.resources())

