"""Fuzz the simulated board (tiny): seeded bad frames, each followed by a valid request (2,000 in
`make test`, 10,000 in `make test-all`).

Bad frames: random garbage (with extra sync bytes), valid frames with a corrupted CRC (mutating
commands included), and every truncation of a valid WRITE_PARAMS and a valid TRAIN frame. After each,
a valid request through the Link must get its correct answer (the Link resends when the bad frame
swallowed it). At the end every weight, bias, t and the seed must read back unchanged: no bad frame executed.
"""
import struct
import time

import numpy as np
import pytest
import torch

from eqfpga.boards.link import Device
from eqfpga.golden.config import load_config
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.hdl.protocol import SYNC_REQUEST, Cmd, encode_pixels, frame, info_payload
from eqfpga.sim.boardsim import SIM_CLK_HZ, SimBoard
from eqfpga.sim.prebuild import design

CFG = load_config("tiny")
PREBUILD = [design("boardsim", CFG, divisor=4)]     # built while earlier tests run (tests/conftest.py)
T_VALUE = 12345


@pytest.mark.parametrize("n_bad", [2_000, pytest.param(10_000, marks=pytest.mark.slow)])
def test_fuzz_device_keeps_answering(n_bad):
    rng = np.random.default_rng(2026)
    s, f = CFG.sizes, CFG.fixed
    W = [rng.integers(-600, 600, (s[n + 1], s[n])) for n in range(CFG.n_layers)]
    B = [rng.integers(-600, 600, s[n + 1]) for n in range(CFG.n_layers)]
    gold = FixedEP(CFG, weights=[torch.as_tensor(w)[None] for w in W],
                   biases=[torch.as_tensor(b)[None] for b in B])
    samples = rng.integers(0, 256, (16, s[0]))
    samples[rng.random(samples.shape) < 0.5] = 0
    expect_pred = gold.predict(torch.as_tensor(samples))[0].tolist()
    info = info_payload(CFG, clk_hz=SIM_CLK_HZ, divisor=4)

    # the bad frames
    wp = frame(SYNC_REQUEST, 31, Cmd.WRITE_PARAMS,
               struct.pack("<BBHHH", 0, 0, 2, 1, 7) + np.arange(7, dtype="<i2").tobytes())
    tr = frame(SYNC_REQUEST, 32, Cmd.TRAIN, bytes([1]) + encode_pixels(samples[0], f.input_frac))
    bad = [wp[:k] for k in range(1, len(wp))] + [tr[:k] for k in range(1, len(tr))]
    assert len(bad) < n_bad            # every truncation, then random garbage and corrupted CRCs
    while len(bad) < n_bad:
        if rng.random() < 0.5:
            g = rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8)
            g[rng.random(g.size) < 0.1] = SYNC_REQUEST
            bad.append(g.tobytes())
        else:
            cmd = int(rng.choice([Cmd.WRITE_PARAMS, Cmd.TRAIN, Cmd.SET_T, Cmd.INFO, Cmd.READ_PARAMS, Cmd.SET_SEED]))
            payload = {Cmd.WRITE_PARAMS: struct.pack("<BBHHH", 1, 1, 0, 0, 2) + b"\x11\x01\x22\x02",
                       Cmd.TRAIN: bytes([2]) + encode_pixels(samples[int(rng.integers(16))], f.input_frac),
                       Cmd.SET_T: struct.pack("<I", int(rng.integers(1 << 32))),
                       Cmd.SET_SEED: struct.pack("<I", int(rng.integers(1 << 32))),
                       Cmd.INFO: b"",
                       Cmd.READ_PARAMS: struct.pack("<BBHHH", 0, 0, 0, 0, 3)}[cmd]
            fr = bytearray(frame(SYNC_REQUEST, int(rng.integers(256)), cmd, payload))
            i = int(rng.integers(len(fr) - 4, len(fr)))       # one CRC byte, a random bit flip
            fr[i] ^= 1 << int(rng.integers(8))
            bad.append(bytes(fr))

    with SimBoard(CFG, divisor=4) as sim, Device.open(sim.port, 115200, timeout=0.5, retries=40) as dev:
        t0 = time.monotonic()
        dev.write_weights(W, B)
        dev.set_t(T_VALUE)
        port, link = dev.link.port, dev.link

        def valid_request(k):
            """(cmd, payload, expected reply payload) of the valid request after bad frame k."""
            kind = k % 5
            n = int(rng.integers(CFG.n_layers))
            if kind == 0:
                return Cmd.INFO, b"", info
            if kind == 1:
                i = int(rng.integers(s[n + 1]))
                return (Cmd.READ_PARAMS, struct.pack("<BBHHH", 0, n, i, 0, s[n]),
                        W[n][i].astype("<i2").tobytes())
            if kind == 2:
                j = int(rng.integers(16))
                return Cmd.INFER, bytes([0]) + encode_pixels(samples[j], f.input_frac), bytes([expect_pred[j]])
            if kind == 3:                               # mutating, but changes nothing
                return Cmd.SET_T, struct.pack("<I", T_VALUE), b""
            return (Cmd.WRITE_PARAMS, struct.pack("<BBHHH", 1, n, 0, 0, s[n + 1]) +
                    B[n].astype("<i2").tobytes(), b"")

        # two valid requests in flight, as a host pipelines them: bad frame, request, bad frame, ...
        pending = []
        for k, b in enumerate(bad):
            port.write(b)
            cmd, payload, want = valid_request(k)
            pending.append((link.submit(cmd, payload), want, k))
            if len(pending) == 2:
                seq, want, kk = pending.pop(0)
                assert link.result(seq)[1] == want, (kk, bad[kk].hex())
        for seq, want, kk in pending:
            assert link.result(seq)[1] == want, (kk, bad[kk].hex())
        W2, B2 = dev.read_weights()
        c = dev.counters()
        seed = dev.seed()
        stats = dict(dev.link.stats)
    for n in range(CFG.n_layers):
        assert np.array_equal(W2[n], W[n]) and np.array_equal(B2[n], B[n])
    assert c["t"] == T_VALUE          # (samples counts the INFERs, resent ones included)
    assert seed == CFG.seed           # no corrupted SET_SEED was executed
    print(f"fuzz: {len(bad)} bad frames in {time.monotonic() - t0:.1f} s, link stats {stats}")
    assert stats["resent"] > 0 and stats["unmatched_errors"] > 0
