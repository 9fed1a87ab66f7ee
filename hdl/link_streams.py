"""What the parts of the serial link's protocol engine exchange (docs/protocol.md, "Implementation").

* ``JOB``: the payload of the receiver -> executor stream, one per received frame (a checked frame
  or an error to answer).
* ``REPLY_HEAD``: the payload of the executor -> reply sender head stream, one per reply; ``length``
  bytes follow on the executor's body stream (plain bytes).
* ``FRAME_BYTE``: a byte of a frame with ``last`` on its final byte: the input of ``CRCAppender``.
* The payload buffer: two banks of ``MAX_PAYLOAD`` bytes, addressed ``Cat(position, bank)``.
* ``FRAME_CRC``: the frame CRC as ``amaranth.lib.crc`` parameters, one byte a cycle. ``.create()``
  gives the ``Processor`` that the receiver checks with and the reply sender appends with;
  ``.compute(data)`` equals ``eqfpga.hdl.protocol.crc32(data)`` (zlib's crc32).
"""
from __future__ import annotations

from amaranth.lib import data
from amaranth.lib.crc import catalog

from .protocol import MAX_PAYLOAD

BANK_ADDR_BITS = (MAX_PAYLOAD - 1).bit_length()     # MAX_PAYLOAD is a power of two: 2048 -> 11
BUFFER_ADDR_BITS = BANK_ADDR_BITS + 1               # the bank is the top address bit
LENGTH_BITS = MAX_PAYLOAD.bit_length()              # 0 ..= MAX_PAYLOAD
STATUS_BITS = 3                                     # eqfpga.hdl.protocol.Status fits

JOB = data.StructLayout({
    "status": STATUS_BITS,      # Status.OK for a checked frame, else the error to reply
    "seq": 8,
    "cmd": 8,
    "length": LENGTH_BITS,      # payload bytes in the bank (0 for an error)
    "bank": 1,                  # the bank holding the payload (a checked frame only)
    "swallowed": 1,             # an error whose dropped bytes held a request sync byte
})

REPLY_HEAD = data.StructLayout({
    "seq": 8,
    "status": STATUS_BITS,
    "length": LENGTH_BITS,      # body bytes that follow
})

FRAME_BYTE = data.StructLayout({
    "data": 8,
    "last": 1,                  # the frame's final byte: its CRC follows
})

FRAME_CRC = catalog.CRC32_ISO_HDLC(data_width=8)
