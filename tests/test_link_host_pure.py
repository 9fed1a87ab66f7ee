"""The host side of the serial link needs no Amaranth: ``eqfpga.boards.link`` and the protocol
module it shares with the gateware (``eqfpga.hdl.protocol``) import, and frame a request, in a
fresh interpreter where importing ``amaranth`` fails."""
import pytest

USE_HOST = """
from eqfpga.boards.link import Link
from eqfpga.hdl.protocol import SYNC_REPLY, Cmd, Status, frame


class Loopback:
    '''A port whose device answers INFO with an empty OK reply.'''
    def __init__(self):
        self.pending = b""

    def write(self, data):
        seq = data[1]
        self.pending += frame(SYNC_REPLY, seq, Status.OK, b"")

    def read(self, n):
        out, self.pending = self.pending[:n], self.pending[n:]
        return out


assert Link(Loopback()).request(Cmd.INFO) == b""
"""


@pytest.mark.parametrize("module", ["eqfpga.hdl.protocol", "eqfpga.boards.link"])
def test_host_side_imports_without_amaranth(module, import_without):
    res = import_without("amaranth", module)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_host_link_works_without_amaranth(import_without):
    res = import_without("amaranth", code=USE_HOST)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_amaranth_block_catches_gateware(import_without):
    res = import_without("amaranth", "eqfpga.hdl.link")
    assert res.returncode != 0 and "amaranth is blocked" in res.stderr, res.stderr[-2000:]
