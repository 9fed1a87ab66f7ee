"""The cocotb driver of the core (``EPCore``) inside a simulation: its ports in the user's terms.

Every method is a coroutine on the simulated clock; values are integers in the spec's LSBs.
"""
from __future__ import annotations

from cocotb.triggers import ReadOnly, RisingEdge

from eqfpga.hdl.core import ACCESS_LAYOUT, LAYER_COUNTERS, Access

PHASES = {"free": 0, "nudged": 1, "negative": 2}
COUNTERS = ("cycles", "samples", "update_sat", "weight_sat", "bias_sat", "act_low", "act_high",
            "unsettled", "cycling")


def pack_access(op: Access, layer: int, row: int = 0, col: int = 0, data: int = 0) -> int:
    """The access payload as an integer, packed by the layout itself."""
    word = 0
    for name, value in (("op", op.value), ("layer", layer), ("row", row), ("col", col), ("data", data)):
        fld = ACCESS_LAYOUT[name]
        word |= (value & ((1 << fld.width) - 1)) << fld.offset
    return word


class CoreDriver:
    """``cfg``: needs ``sizes`` and ``seed`` (the seed port's value after ``reset``)."""

    def __init__(self, dut, cfg):
        self.dut, self.cfg = dut, cfg

    async def reset(self):
        d = self.dut
        for sig in (d.sample__valid, d.access__valid, d.t_set, d.learn):
            sig.value = 0
        self.set_seed(self.cfg.seed)
        d.result__ready.value = 1
        d.access_rsp__ready.value = 1
        d.rst.value = 1
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0
        await RisingEdge(d.clk)

    async def _push(self, valid, payload, ready, value):
        """One stream transfer: hold valid until a clock edge sees ready."""
        payload.value = value
        valid.value = 1
        while True:
            await ReadOnly()
            taken = int(ready.value)
            await RisingEdge(self.dut.clk)
            if taken:
                break
        valid.value = 0

    async def access(self, op: Access, layer: int, row: int = 0, col: int = 0, data: int = 0) -> int:
        d = self.dut
        await self._push(d.access__valid, d.access__payload, d.access__ready,
                         pack_access(op, layer, row, col, data))
        await RisingEdge(d.access_rsp__valid)
        await ReadOnly()
        value = d.access_rsp__payload.value.to_signed()
        await RisingEdge(d.clk)
        return value

    async def write_weight(self, n, i, j, v):
        await self.access(Access.WRITE_WEIGHT, n, i, j, v)

    async def read_weight(self, n, i, j):
        return await self.access(Access.READ_WEIGHT, n, i, j)

    async def write_bias(self, n, i, v):
        await self.access(Access.WRITE_BIAS, n, i, 0, v)

    async def read_bias(self, n, i):
        return await self.access(Access.READ_BIAS, n, i)

    async def read_state(self, phase: str, k: int, i: int):
        return await self.access(Access.READ_STATE, k, PHASES[phase], i)

    async def load_params(self, weights, biases):
        for n, W in enumerate(weights):
            for i, row in enumerate(W):
                for j, v in enumerate(row):
                    await self.write_weight(n, i, j, int(v))
            for i, v in enumerate(biases[n]):
                await self.write_bias(n, i, int(v))

    async def read_params(self):
        s = self.cfg.sizes
        W, B = [], []
        for n in range(len(s) - 1):
            W.append([[await self.read_weight(n, i, j) for j in range(s[n])] for i in range(s[n + 1])])
            B.append([await self.read_bias(n, i) for i in range(s[n + 1])])
        return W, B

    async def read_layer_counters(self) -> dict:
        """{name: [per weight layer]} for every name of ``LAYER_COUNTERS``."""
        n_layers = len(self.cfg.sizes) - 1
        return {name: [await self.access(Access.READ_COUNTER, n, cid) for n in range(n_layers)]
                for cid, name in enumerate(LAYER_COUNTERS)}

    async def read_states(self, phase: str):
        s = self.cfg.sizes
        return [[await self.read_state(phase, k, i) for i in range(s[k])] for k in range(1, len(s))]

    async def set_t(self, t: int):
        d = self.dut
        d.t_value.value = t
        d.t_set.value = 1
        await RisingEdge(d.clk)
        d.t_set.value = 0
        await RisingEdge(d.clk)

    def set_seed(self, seed: int):
        """Drive the seed port (held; change it only while the core is idle)."""
        self.dut.seed.value = int(seed) & 0xFFFFFFFF

    async def run_sample(self, pixels, label: int, learn: bool) -> int:
        """Stream one sample in and wait for its prediction."""
        d = self.dut
        d.learn.value = int(learn)
        for x in list(pixels) + [label]:
            await self._push(d.sample__valid, d.sample__payload, d.sample__ready, int(x))
        d.learn.value = 0
        await RisingEdge(d.result__valid)
        await ReadOnly()
        pred = int(d.result__payload.value)
        await RisingEdge(d.clk)
        return pred

    async def counters(self) -> dict:
        """All counters and t, read once the values after the last clock edge have settled."""
        await ReadOnly()
        out = {name: int(getattr(self.dut, name).value) for name in COUNTERS} | {"t": int(self.dut.t.value)}
        await RisingEdge(self.dut.clk)
        return out
