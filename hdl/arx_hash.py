"""The spec's random source H(k, c) (docs/fixed-point.md, "Random source") in gateware.

Eight rounds of add-rotate-xor on two 16-bit halves: adders, xors and wiring only. The component
is combinational (the core registers its output); ``arx_hash_expr`` builds the same logic inline
so the core can instantiate one per lane. Bit-exact to ``eqfpga.golden.fixedpoint.arx_hash``.
"""

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eqfpga.golden.fixedpoint import HASH_ROUNDS


def arx_hash_expr(m, key, ctr, *, name="arx"):
    """H(key, ctr) as a 32-bit value (operands zero-extended to 32 bits), built in module ``m``.

    Each round's halves are named signals: without them the shared subexpressions would be
    re-lowered at every use and the netlist would grow exponentially with the rounds.
    """
    key, ctr = Value.cast(key), Value.cast(ctr)
    if len(key) > 32 or len(ctr) > 32:
        raise ValueError(f"key and counter must be at most 32 bits wide, not {len(key)} and {len(ctr)}")
    key, ctr = key.as_unsigned(), ctr.as_unsigned()
    key = Cat(key, Const(0, 32 - len(key)))
    ctr = Cat(ctr, Const(0, 32 - len(ctr)))
    x, y = ctr[16:32], ctr[0:16]
    k0, k1 = key[0:16], key[16:32]
    for r in range(HASH_ROUNDS):
        k = (k0 if r % 2 == 0 else k1) ^ r
        xs, ys = Signal(16, name=f"{name}_x{r}"), Signal(16, name=f"{name}_y{r}")
        m.d.comb += xs.eq((x.rotate_right(7) + y)[:16] ^ k)     # + is mod 2**16: keep the low half
        m.d.comb += ys.eq(y.rotate_left(2) ^ xs)
        x, y = xs, ys
    return Cat(y, x)


class ArxHash(wiring.Component):
    """Combinational H(key, ctr): ``key`` and ``ctr`` in, 32-bit ``hash`` out."""

    key: In(32)
    ctr: In(32)
    hash: Out(32)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.hash.eq(arx_hash_expr(m, self.key, self.ctr))
        return m
