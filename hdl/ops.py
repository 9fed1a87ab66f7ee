"""The ops of the core: what the controller emits and what the broadcast tree carries to the lanes.

One op a cycle. The controller's op (``op_layout``) travels down the root's delay line; the lanes
receive a subset of it (``record_layout``) through the broadcast tree, together with the operands
the root read from its state memory and, independently, a state copy (``copy``) the root sends to
one lane. Field widths come from ``Plan``.
"""
from __future__ import annotations

from amaranth.hdl import Signal, signed, unsigned
from amaranth.lib import data, enum
from amaranth.utils import ceil_log2

from .delay import Delays
from .plan import IDX_BITS, N_SLOTS, Plan


class Kind(enum.Enum, shape=4):
    NOP = 0
    D0MAC = 1       # input drive: W_0 row word times one non-zero pixel, accumulated in the lane
    FB = 2          # feedback into a lane layer: weight times the broadcast state, accumulated
    FWD = 3         # forward into a root layer: weight times the lane's state, into the adder tree
    U0B = 4         # update b_0 (lanes)
    U0 = 5          # update W_0 at one non-zero pixel (lanes)
    UWA = 6         # W_n update, first product a_(n+1)[m] a_n[j]
    UWC = 7         # W_n update, second product c_(n+1)[m] c_n[j], then round and write
    UBR = 8         # update a root bias
    HRD = 9         # host read
    HWR = 10        # host write


class Target(enum.Enum, shape=3):
    """What a host op addresses."""
    NONE = 0
    WEIGHT = 1          # a lane's W_wl memory
    LANE_BIAS = 2       # a lane's b_0
    LANE_STATE = 3      # a lane's layer-1 state
    ROOT_BIAS = 4       # the root's b_n, n >= 1
    ROOT_STATE = 5      # the root's states (layers 2..N)
    COUNTER = 6         # a per-layer counter


LANE_TARGETS = (Target.WEIGHT, Target.LANE_BIAS, Target.LANE_STATE)


def _bits(n):
    return max(1, ceil_log2(max(n, 1) + 1))


class Widths:
    """Field widths of one config's ops."""

    def __init__(self, pl: Plan):
        f, s = pl.cfg.fixed, pl.sizes
        self.pl = pl
        self.SW = f.state_frac + 1
        self.waddr = _bits(pl.w_words)
        self.g = _bits(max(pl.blocks(k) for k in range(1, pl.N + 1)))
        self.lsa = _bits(N_SLOTS * max(pl.SL, 1))
        self.rsa = _bits(N_SLOTS * max(pl.SR, 1))
        self.lane = _bits(pl.P)
        self.x = max(f.input_frac, 1)
        self.j = _bits(s[0])
        self.hdata = max(f.weight_bits, f.bias_bits)


# Record fields the lanes use late, and how late (lane stages): the core delays them once before the
# broadcast tree (``delay_late_fields``), so that no lane keeps a copy of them for those cycles.
LATE_FIELDS = {"bval": 2, "bval2": 2, "x": 2, "hdata": 12}


def delay_late_fields(m, rec, name: str = "late"):
    """``rec`` (a record) with its ``LATE_FIELDS`` delayed by registers: what the lanes receive."""
    out = Signal(rec.shape(), name=name)
    delay = Delays(m, ram=False)
    for field in rec.shape().members:
        m.d.comb += getattr(out, field).eq(delay(getattr(rec, field), LATE_FIELDS.get(field, 0), f"{name}_{field}"))
    return out


def weight_base(m, pl: Plan, wl, name: str = "w_base"):
    """The first word of layer ``wl``'s weights in a lane's one weight memory (``Plan.w_base``):
    what turns an op's address within its layer into the memory's."""
    base = Signal(_bits(pl.w_words), name=name)
    with m.Switch(wl):
        for n in range(1, pl.N):
            with m.Case(n):
                m.d.comb += base.eq(pl.w_base(n))
    return base


def record_layout(w: Widths) -> data.StructLayout:
    """What every lane receives each cycle."""
    return data.StructLayout({
        "kind": Kind, "wl": unsigned(2), "waddr": unsigned(w.waddr), "g": unsigned(w.g), "gp": unsigned(IDX_BITS), "gl": unsigned(2),
        "sa": unsigned(w.lsa), "sb": unsigned(w.lsa),
        "zero": 1, "zero2": 1, "clear": 1, "last": 1, "lastfree": 1,
        "bval": unsigned(w.SW), "bval2": unsigned(w.SW), "x": unsigned(w.x), "idx": unsigned(IDX_BITS),
        "inj": 1, "inj_g": unsigned(w.g), "lane": unsigned(w.lane), "target": Target,
        "hdata": signed(w.hdata),
        "cp_en": 1, "cp_lane": unsigned(w.lane), "cp_addr": unsigned(w.lsa), "cp_val": unsigned(w.SW),
    })


def op_layout(w: Widths) -> data.StructLayout:
    """The controller's op: the record's fields plus the root's."""
    fields = dict(record_layout(w).members)
    for k in ("bval", "bval2", "cp_en", "cp_lane", "cp_addr", "cp_val", "x"):
        del fields[k]
    fields.update({
        "layer": unsigned(3),            # the root layer a FWD op finishes, the layer of an update / host op
        "ra": unsigned(w.rsa), "rc": unsigned(w.rsa),     # root state reads for the broadcast operands
        "rb": unsigned(w.rsa),           # root bias address
        "rsa": unsigned(w.rsa), "rsb": unsigned(w.rsa),   # root: s_(t-1) and s_(t-2) / write address
        "i": unsigned(IDX_BITS),         # root neuron / bias index
        "nudge": 1, "neg": 1, "pixel": 1, "zero_op": 1, "cid": unsigned(3),
    })
    return data.StructLayout(fields)
