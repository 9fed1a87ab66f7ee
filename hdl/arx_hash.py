"""The spec's random source H(k, c) (docs/fixed-point.md, "Random source") in gateware.

Eight rounds of add-rotate-xor on two 16-bit halves: adders, xors and wiring only. ``ArxHash`` and
``arx_hash_expr`` are combinational (eight adders in series: too slow for one clock cycle at speed);
``arx_hash_pipeline`` registers every round (the core's per-lane random source, latency 8) and
``arx_round`` is one round with a run-time round index (the controller's one-round-a-cycle key
hash). All bit-exact to ``eqfpga.golden.fixedpoint.arx_hash``.
"""

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eqfpga.golden.fixedpoint import HASH_ROUNDS, share_bits

from .plan import IDX_BITS


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


def arx_round(x, y, k, r):
    """One round: (x, y) -> (((ror(x, 7) + y) mod 2**16) ^ k ^ r, rol(y, 2) ^ new x); returns the two
    16-bit values (expressions). ``k`` is the round's key half, ``r`` the round index (a constant
    or a value)."""
    x, y = Value.cast(x)[:16], Value.cast(y)[:16]
    xn = (x.rotate_right(7) + y)[:16] ^ Value.cast(k)[:16] ^ Value.cast(r)
    return xn, y.rotate_left(2) ^ xn


def arx_hash_pipeline(m, key, ctr, *, name="arx", per_stage=1, reset_less=False):
    """H(key, ctr) with a register after every ``per_stage`` rounds: the result (32 bits) is valid
    HASH_ROUNDS / per_stage cycles after ``ctr``; ``key`` must hold still meanwhile.
    ``reset_less``: registers without a reset (data only)."""
    if HASH_ROUNDS % per_stage:
        raise ValueError(f"per_stage must divide {HASH_ROUNDS}, not {per_stage!r}")
    key, ctr = Value.cast(key), Value.cast(ctr)
    if len(key) > 32 or len(ctr) > 32:
        raise ValueError(f"key and counter must be at most 32 bits wide, not {len(key)} and {len(ctr)}")
    key = Cat(key.as_unsigned(), Const(0, 32 - len(key)))
    ctr = Cat(ctr.as_unsigned(), Const(0, 32 - len(ctr)))
    x, y = ctr[16:32], ctr[0:16]
    k0, k1 = key[0:16], key[16:32]
    for r in range(HASH_ROUNDS):
        xn, yn = arx_round(x, y, k0 if r % 2 == 0 else k1, Const(r, 16))
        xs = Signal(16, name=f"{name}_x{r}", reset_less=reset_less)
        ys = Signal(16, name=f"{name}_y{r}", reset_less=reset_less)
        dom = m.d.sync if (r + 1) % per_stage == 0 else m.d.comb
        dom += [xs.eq(xn), ys.eq(yn)]
        x, y = xs, ys
    return Cat(y, x)


def hash_counter(layer: int, u, v, m: int):
    """The spec's counter of the hash word parameter (u, v) of ``layer`` reads when its update
    needs ``m`` random bits (``fixedpoint.random_counter`` with ``share_bits(m)``): ``u`` a 14-bit
    value, ``v`` a 14-bit value or constant."""
    sft = (32 // share_bits(max(m, 0))).bit_length() - 1      # u // S: S = 1, 2 or 4 words a piece
    v = Const(v, IDX_BITS) if isinstance(v, int) else Value.cast(v)[:IDX_BITS]
    return Cat(v, Value.cast(u)[sft:IDX_BITS], Const(0, sft), Const(layer, 4))


def hash_piece(word, index, m: int):
    """The ``share_bits(m)``-bit piece ``index`` (an int or a value, taken mod the pieces a word
    holds) of hash ``word`` (``fixedpoint.update_random`` before its mask)."""
    b = share_bits(max(m, 0))
    if b == 32:
        return word
    return word.word_select(index % (32 // b) if isinstance(index, int) else index & (32 // b - 1), b)


class ArxHash(wiring.Component):
    """Combinational H(key, ctr): ``key`` and ``ctr`` in, 32-bit ``hash`` out."""

    key: In(32)
    ctr: In(32)
    hash: Out(32)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.hash.eq(arx_hash_expr(m, self.key, self.ctr))
        return m
