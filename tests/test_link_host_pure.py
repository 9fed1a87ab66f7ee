"""The host side of the serial link needs no Amaranth: ``eqfpga.boards.link`` and the protocol
module it shares with the gateware (``eqfpga.hdl.protocol``) import, and frame a request, in a
fresh interpreter where importing ``amaranth`` fails."""
import subprocess
import sys

import pytest

BLOCK_AMARANTH = """
import importlib, importlib.abc, sys


class NoAmaranth(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "amaranth" or name.startswith("amaranth."):
            raise ImportError(f"amaranth is blocked in this test ({name})")
        return None


sys.meta_path.insert(0, NoAmaranth())
for name in sys.argv[1:]:
    importlib.import_module(name)
assert not any(m == "amaranth" or m.startswith("amaranth.") for m in sys.modules), "amaranth got imported"
print("ok")
"""

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


def _run(*args, tmp_path):
    return subprocess.run([sys.executable, "-c", BLOCK_AMARANTH, *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["eqfpga.hdl.protocol", "eqfpga.boards.link"])
def test_host_side_imports_without_amaranth(module, tmp_path):
    res = _run(module, tmp_path=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_host_link_works_without_amaranth(tmp_path):
    script = BLOCK_AMARANTH.replace('print("ok")', USE_HOST + '\nprint("ok")')
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_amaranth_block_catches_gateware(tmp_path):
    res = _run("eqfpga.hdl.link", tmp_path=tmp_path)
    assert res.returncode != 0 and "amaranth is blocked" in res.stderr, res.stderr[-2000:]
