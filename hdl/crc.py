"""Byte-wise CRC-32/ISO-HDLC (zlib's ``crc32``) in gateware, one byte per cycle.

``crc32_byte_expr(crc, byte)`` is the combinational next-state function: the eight shift/xor steps
of the reflected LFSR unrolled at elaboration time into one XOR network per output bit (each bit is
a parity of at most ~20 inputs). ``CRC32`` wraps it with a register: ``clear`` loads the initial
value, ``valid`` + ``data`` feed a byte, ``value`` is the finished CRC (final xor applied) of the
bytes fed since the last ``clear``.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

POLY = 0xEDB88320          # reflected polynomial 0x04C11DB7
INIT = 0xFFFFFFFF
XOROUT = 0xFFFFFFFF


def crc32_update(crc: int, data: bytes) -> int:
    """Software model of the register (no init / final xor): the same steps as the gateware."""
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (POLY if crc & 1 else 0)
    return crc


def _symbolic_step():
    """For each of the 32 next-state bits, the set of inputs it is the parity of.

    Inputs are ("c", i) for crc bit i and ("d", i) for data bit i; a set is an XOR (GF(2) sum)."""
    bits = [frozenset({("c", i)}) for i in range(32)]
    for i in range(8):
        bits[i] = bits[i] ^ {("d", i)}
    for _ in range(8):
        low = bits[0]
        bits = bits[1:] + [frozenset()]
        for i in range(32):
            if (POLY >> i) & 1:
                bits[i] = bits[i] ^ low
    return bits


_STEP = _symbolic_step()


def crc32_byte_expr(crc, byte):
    """The register after feeding ``byte`` (8 bits) into ``crc`` (32 bits): a 32-bit expression."""
    out = []
    for terms in _STEP:
        x = None
        for kind, i in sorted(terms):
            b = crc[i] if kind == "c" else byte[i]
            x = b if x is None else x ^ b
        out.append(x)
    return Cat(*out)


class CRC32(wiring.Component):
    """Running CRC-32 over a byte sequence (``clear`` has priority over ``valid``)."""

    clear: In(1)
    valid: In(1)
    data: In(8)
    value: Out(32)      # zlib.crc32 of the bytes fed since the last clear

    def elaborate(self, platform):
        m = Module()
        reg = Signal(32, init=INIT)
        with m.If(self.clear):
            m.d.sync += reg.eq(INIT)
        with m.Elif(self.valid):
            m.d.sync += reg.eq(crc32_byte_expr(reg, self.data))
        m.d.comb += self.value.eq(reg ^ XOROUT)
        return m
