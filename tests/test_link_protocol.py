"""The serial link on the `tiny` config through the simulated board (SimBoard + Device).

Every command, every error status, and a TRAIN sequence that must leave exactly the weights the
golden FixedEP computes. One board build (cached under build/boardsim) serves the module.
"""
import platform
import struct
import time
import zlib

import numpy as np
import pytest
import torch

from eqfpga.boards.link import Device, LinkError
from eqfpga.golden.config import load_config
from eqfpga.golden.fixed_model import FixedEP
from eqfpga.hdl.protocol import (COUNTER_NAMES, MAX_PAYLOAD, SYNC_REPLY, SYNC_REQUEST, VERSION, Cmd, Status,
                                 config_crc, decode_pixels, encode_pixels, frame, info_payload)
from eqfpga.sim.boardsim import SIM_CLK_HZ, SimBoard
from eqfpga.sim.prebuild import design

CFG = load_config("tiny")
PREBUILD = [design("boardsim", CFG, divisor=4)]     # built while earlier tests run (tests/conftest.py)


@pytest.fixture(scope="module")
def board():
    with SimBoard(CFG, divisor=4) as sim:
        yield sim


@pytest.fixture
def dev(board):
    with Device.open(board.port, 115200, timeout=2.0, retries=3) as d:
        yield d


def read_replies(port, n, timeout=5.0):
    """The next n well-formed replies on the port as (seq, status, payload)."""
    buf, out, t0 = bytearray(), [], time.monotonic()
    while len(out) < n:
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"only {len(out)} of {n} replies within {timeout} s: {out}")
        buf += port.read(max(1, port.in_waiting))
        while True:
            i = buf.find(bytes([SYNC_REPLY]))
            if i < 0 or len(buf) - i < 5:
                break
            ln = int.from_bytes(buf[i + 3:i + 5], "little")
            if len(buf) - i < 9 + ln:
                break
            body = bytes(buf[i + 1:i + 5 + ln])
            assert zlib.crc32(body) == int.from_bytes(buf[i + 5 + ln:i + 9 + ln], "little"), buf.hex()
            out.append((body[0], body[1], body[4:]))
            del buf[:i + 9 + ln]
    return out


def raw(dev, data: bytes, n=1):
    dev.link.port.write(data)
    return read_replies(dev.link.port, n)


def random_params(rng):
    f = CFG.fixed
    W = [rng.integers(-(1 << (f.weight_bits - 1)), 1 << (f.weight_bits - 1), (CFG.sizes[n + 1], CFG.sizes[n]))
         for n in range(CFG.n_layers)]
    B = [rng.integers(-(1 << (f.bias_bits - 1)), 1 << (f.bias_bits - 1), CFG.sizes[n + 1])
         for n in range(CFG.n_layers)]
    return W, B


def random_pixels(rng, n):
    px = rng.integers(0, 256, (n, CFG.sizes[0]))
    px[rng.random(px.shape) < 0.5] = 0          # runs of zeros, as in MNIST
    return px


# ---- pixel code ---------------------------------------------------------------------------------
def test_pixel_code_roundtrip():
    rng = np.random.default_rng(1)
    for frac in (1, 4, 8, 9, 12, 16):
        for _ in range(50):
            n = int(rng.integers(1, 900))
            px = rng.integers(0, 1 << frac, n)
            px[rng.random(n) < rng.random()] = 0
            code = encode_pixels(px, frac)
            assert np.array_equal(decode_pixels(code, frac, n), px)
    assert encode_pixels(np.zeros(600, int), 8) == bytes([0, 255, 0, 255, 0, 87])
    assert encode_pixels([0, 5, 0, 0], 12) == bytes([0, 0, 0, 5, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="0..255"):
        encode_pixels([256], 8)


# ---- commands ---------------------------------------------------------------------------------
def test_info_and_config(dev):
    info = dev.info()
    assert info["magic"] == "EQFP" and info["version"] == VERSION == 2 and info["max_payload"] == MAX_PAYLOAD
    assert info["clk_hz"] == SIM_CLK_HZ and info["baud_divisor"] == 4
    # config_crc covers the elaborated fields only: the runtime ones (seed, epochs, name) are left out
    assert info["config_crc"] == zlib.crc32(CFG.elaborated_json().encode()) == config_crc(CFG)
    assert info["config_crc"] == config_crc(CFG.replace(seed=CFG.seed + 1, epochs=5, name="x"))
    assert dev.link.request(Cmd.INFO) == info_payload(CFG, clk_hz=SIM_CLK_HZ, divisor=4)
    assert dev.config() == CFG                          # the whole build config, its seed included
    dev.check_config(CFG)
    dev.check_config(CFG.replace(seed=0xFFFFFFFF, epochs=30, name="renamed"))     # runtime fields differ
    with pytest.raises(LinkError, match=r"T1: device 8, host 9.*fixed\.acc_bits.*only name, epochs, seed"):
        dev.check_config(CFG.replace(T1=9, fixed=CFG.fixed.__class__(**{**CFG.to_dict()["fixed"], "acc_bits": 30})))
    with pytest.raises(LinkError, match=r"^the device was built for another config \(T2: device 4, host 5\)"):
        dev.check_config(CFG.replace(T2=5, seed=9))       # a runtime difference does not hide an elaborated one
    js = CFG.to_json().encode()
    assert dev.link.request(Cmd.CONFIG, struct.pack("<HH", 10, 7)) == js[10:17]
    assert dev.link.request(Cmd.CONFIG, struct.pack("<HH", len(js), 0)) == b""


def test_params_roundtrip(dev):
    rng = np.random.default_rng(2)
    W, B = random_params(rng)
    dev.write_weights(W, B)
    W2, B2 = dev.read_weights()
    for a, b in zip(W + B, W2 + B2):
        assert np.array_equal(a, b)
    dev.write_params("weight", 1, 2, 3, [7, -8, 9])
    assert dev.read_params("weight", 1, 2, 0, 7).tolist() == W[1][2, :3].tolist() + [7, -8, 9] + [W[1][2, 6]]
    dev.write_params("bias", 0, 4, 0, [-2048, 2047])
    assert dev.read_params("bias", 0, 3, 0, 4).tolist() == [B[0][3], -2048, 2047, B[0][6]]
    assert dev.read_params("weight", 0, 0, 5, 0).size == 0


def test_set_t_and_counters(dev):
    dev.set_t(0xDEADBEEF)
    c = dev.counters()
    assert list(c) == list(COUNTER_NAMES) and c["t"] == 0xDEADBEEF
    dev.set_t(0)
    assert dev.counters()["t"] == 0


def test_seed_register(dev):
    """The seed register: the build's seed after reset, written by SET_SEED, read by GET_SEED; the
    host refuses a seed outside u32 before sending anything."""
    assert dev.seed() == CFG.seed == 1          # a board never told a seed computes with its build's
    for v in (0, 0xFFFFFFFF, 0x12345678, np.uint32(77)):
        dev.set_seed(v)
        assert dev.seed() == v
    sent = dev.link.stats["sent"]
    for bad in (-1, 2**32, 1.5, "3", True, None):
        with pytest.raises(ValueError, match="seed must be an integer from 0 to 2\\*\\*32 - 1"):
            dev.set_seed(bad)
    assert dev.link.stats["sent"] == sent
    assert dev.seed() == 77
    dev.set_seed(CFG.seed)


def test_train_bit_exact_with_golden(dev):
    """TRAIN samples on the device and on FixedEP(tiny): every prediction, weight, bias and counter."""
    rng = np.random.default_rng(3)
    gold = FixedEP(CFG)
    W0 = [w[0].numpy() for w in gold.weights]
    B0 = [b[0].numpy() for b in gold.biases]
    dev.write_weights(W0, B0)
    dev.set_t(0)
    c0 = dev.counters()
    px = random_pixels(rng, 40)
    labels = rng.integers(0, CFG.sizes[-1], 40)
    want = []
    for i in range(20):
        ph = gold.train_sample(torch.as_tensor(px[i]), int(labels[i]))
        want.append(int(ph.free[-1][0, 0].argmax()))
    got = [dev.train(px[i], labels[i]) for i in range(10)]
    got += dev.train_many(px[10:20], labels[10:20]).tolist()      # two requests in flight
    assert got == want
    W, B = dev.read_weights()
    for n in range(CFG.n_layers):
        assert np.array_equal(W[n], gold.weights[n][0].numpy()), f"W{n}"
        assert np.array_equal(B[n], gold.biases[n][0].numpy()), f"b{n}"
    c = dev.counters()
    g = gold.counters.as_dict()
    assert c["t"] == 20 and c["samples"] - c0["samples"] == 20
    for k in ("update_sat", "weight_sat", "bias_sat", "act_low", "act_high"):
        assert c[k] - c0[k] == sum(g[k]), k
    # inference does not change anything, and predicts what the golden model predicts
    pred = dev.infer_many(px[20:40])
    assert pred.tolist() == gold.predict(torch.as_tensor(px[20:40]))[0].tolist()
    assert dev.infer(px[20]) == pred[0]
    assert dev.counters()["t"] == 20
    W2, B2 = dev.read_weights()
    assert all(np.array_equal(a, b) for a, b in zip(W + B, W2 + B2))


# ---- errors -------------------------------------------------------------------------------------
def test_bad_crc_unknown_cmd_bad_length(dev):
    f = bytearray(frame(SYNC_REQUEST, 200, Cmd.INFO, b""))
    f[-1] ^= 1
    assert raw(dev, bytes(f)) == [(200, Status.BAD_CRC, b"\x00")]     # no sync byte inside
    assert raw(dev, frame(SYNC_REQUEST, 201, 0x42, b"xyz")) == [(201, Status.UNKNOWN_CMD, b"")]
    assert raw(dev, frame(SYNC_REQUEST, 202, 0, b"")) == [(202, Status.UNKNOWN_CMD, b"")]
    hdr = bytes([SYNC_REQUEST, 203, Cmd.WRITE_PARAMS]) + (MAX_PAYLOAD + 1).to_bytes(2, "little")
    assert raw(dev, hdr) == [(203, Status.BAD_LENGTH, b"\x00")]    # answered at once
    f = frame(SYNC_REQUEST, 204, Cmd.INFO, bytes([SYNC_REQUEST]))[:-1] + b"\x00"
    assert raw(dev, f) == [(204, Status.BAD_CRC, b"\x01")]         # a sync byte was swallowed
    assert dev.info()["magic"] == "EQFP"


def test_bad_arg_changes_nothing(dev):
    rng = np.random.default_rng(4)
    W, B = random_params(rng)
    dev.write_weights(W, B)
    dev.set_t(77)
    dev.set_seed(0xA5A5A5A5)
    before = dev.counters()
    s = CFG.sizes
    good = encode_pixels(random_pixels(rng, 1)[0], 8)
    bad = [
        (Cmd.INFO, b"\x00"),
        (Cmd.CONFIG, struct.pack("<HH", 560, 10)),                       # past the JSON
        (Cmd.CONFIG, struct.pack("<H", 0)),
        (Cmd.COUNTERS, b"\x01"),
        (Cmd.SET_T, b"\x01\x02\x03"),
        (Cmd.SET_SEED, b""),
        (Cmd.SET_SEED, b"\x01\x02\x03"),                                    # a seed is 4 bytes
        (Cmd.SET_SEED, b"\x01\x02\x03\x04\x05"),
        (Cmd.GET_SEED, b"\x00"),
        (Cmd.WRITE_PARAMS, struct.pack("<BBHHH", 0, 2, 0, 0, 1) + b"\0\0"),    # layer 2 of 2
        (Cmd.WRITE_PARAMS, struct.pack("<BBHHH", 0, 0, 7, 0, 1) + b"\0\0"),    # row 7 of 7
        (Cmd.WRITE_PARAMS, struct.pack("<BBHHH", 0, 0, 0, 10, 3) + bytes(6)),  # leaves the row
        (Cmd.WRITE_PARAMS, struct.pack("<BBHHH", 0, 0, 0, 0, 3) + bytes(5)),   # short
        (Cmd.WRITE_PARAMS, struct.pack("<BBHHH", 1, 0, 0, 1, 1) + bytes(2)),   # bias with col 1
        (Cmd.WRITE_PARAMS, struct.pack("<BBHHH", 1, 1, 2, 0, 2) + bytes(4)),   # b_1 has 3 entries
        (Cmd.WRITE_PARAMS, struct.pack("<BBHHH", 2, 0, 0, 0, 1) + bytes(2)),   # kind 2
        (Cmd.WRITE_PARAMS, b"\x00"),
        (Cmd.WRITE_PARAMS, struct.pack("<BBHHHhh", 0, 0, 1, 0, 2, 5, 2048)),       # > 2047 (12 bits)
        (Cmd.WRITE_PARAMS, struct.pack("<BBHHHhh", 1, 0, 1, 0, 2, -2049, 5)),      # < -2048
        (Cmd.READ_PARAMS, struct.pack("<BBHHH", 0, 1, 0, 0, 8)),               # W_1 rows have 7
        (Cmd.READ_PARAMS, struct.pack("<BBHHH", 0, 1, 0, 0, 1) + b"\0"),
        (Cmd.TRAIN, b""),
        (Cmd.TRAIN, bytes([3]) + good),                                        # label 3 of 3
        (Cmd.TRAIN, bytes([0]) + encode_pixels(np.ones(s[0] - 1, int), 8)),   # 11 pixels
        (Cmd.TRAIN, bytes([0]) + encode_pixels(np.ones(s[0] + 1, int), 8)),   # 13 pixels
        (Cmd.TRAIN, bytes([0]) + bytes([0, 10, 0])),                           # zero without run
        (Cmd.TRAIN, bytes([0]) + bytes([0, 11, 9])),                           # run past the end
        (Cmd.INFER, bytes([5]) + good),
    ]
    for k, (cmd, payload) in enumerate(bad):
        assert raw(dev, frame(SYNC_REQUEST, 100 + k, cmd, payload)) == [(100 + k, Status.BAD_ARG, b"")], \
            (cmd, payload.hex())
    W2, B2 = dev.read_weights()
    assert all(np.array_equal(a, b) for a, b in zip(W + B, W2 + B2))
    assert dev.counters() == before
    assert dev.seed() == 0xA5A5A5A5
    with pytest.raises(LinkError, match="BAD_ARG.*compare Device.config"):
        dev.link.request(Cmd.READ_PARAMS, struct.pack("<BBHHH", 0, 0, 9, 0, 1))
    with pytest.raises(LinkError, match="SET_SEED .*BAD_ARG.*SET_SEED takes exactly 4 bytes"):
        dev.link.request(Cmd.SET_SEED, b"\x05\x06")
    assert dev.seed() == 0xA5A5A5A5
    dev.set_seed(CFG.seed)


def test_timeout(board):
    with Device.open(board.port, 115200) as dev:
        part = frame(SYNC_REQUEST, 55, Cmd.SET_T, b"\x01\x02\x03\x04")[:-3]
        assert raw(dev, part) == [(55, Status.TIMEOUT, b"\x00")]           # after 256 byte times
        assert raw(dev, bytes([SYNC_REQUEST])) == [(0, Status.TIMEOUT, b"\x00")]  # header not read
        assert raw(dev, bytes([SYNC_REQUEST, 1, SYNC_REQUEST])) == [(1, Status.TIMEOUT, b"\x01")]
        assert dev.counters()["t"] != 0x04030201


def test_duplicate(dev):
    rng = np.random.default_rng(5)
    dev.set_t(0)
    px = random_pixels(rng, 2)
    tr = frame(SYNC_REQUEST, 77, Cmd.TRAIN, bytes([1]) + encode_pixels(px[0], 8))
    st = frame(SYNC_REQUEST, 78, Cmd.SET_T, struct.pack("<I", 1000))
    (s1, st1, p1), = raw(dev, tr)
    assert (s1, st1) == (77, Status.OK)
    assert raw(dev, tr) == [(77, Status.DUPLICATE, p1)]               # cached prediction
    assert dev.counters()["samples"] >= 1 and dev.counters()["t"] == 1
    assert raw(dev, st) == [(78, Status.OK, b"")]
    assert raw(dev, tr + st, 2) == [(77, Status.DUPLICATE, p1), (78, Status.DUPLICATE, b"")]
    assert dev.counters()["t"] == 1000
    # a non-mutating request with the same seq executes normally
    assert raw(dev, frame(SYNC_REQUEST, 78, Cmd.COUNTERS, b""))[0][1] == Status.OK
    # SET_SEED is mutating: a resent copy arriving after a later SET_SEED must not undo it
    s1 = frame(SYNC_REQUEST, 79, Cmd.SET_SEED, struct.pack("<I", 5))
    s2 = frame(SYNC_REQUEST, 80, Cmd.SET_SEED, struct.pack("<I", 6))
    assert raw(dev, s1 + s2, 2) == [(79, Status.OK, b""), (80, Status.OK, b"")]
    assert raw(dev, s1) == [(79, Status.DUPLICATE, b"")]
    assert raw(dev, frame(SYNC_REQUEST, 79, Cmd.GET_SEED, b"")) == [(79, Status.OK, struct.pack("<I", 6))]
    dev.set_seed(CFG.seed)


def test_link_resends_after_garbage(dev):
    """A truncated frame swallows the next request: the Link notices the device's error reply and
    resends; the pipelined requests all complete once."""
    dev.set_t(0)
    part = frame(SYNC_REQUEST, 9, Cmd.WRITE_PARAMS, struct.pack("<BBHHH", 0, 0, 0, 0, 4) + bytes(8))[:9]
    dev.link.port.write(part)
    assert dev.counters()["t"] == 0
    assert dev.link.stats["resent"] >= 1


# The harness's idle sleep: poll() on both of its descriptors without a timeout (glibc may issue it
# as ppoll with no timeout). Syscall numbers and their timeout argument per machine.
IDLE_POLL = {"x86_64": {7: 0xFFFFFFFF, 271: 0}, "aarch64": {73: 0}}


def _in_idle_poll(pid) -> bool:
    """The process is blocked in the harness's idle poll() (read from /proc/<pid>/syscall)."""
    fields = open(f"/proc/{pid}/syscall").read().split()
    if fields[0] in ("running", "-1"):
        return False
    nr, args = int(fields[0]), [int(a, 16) for a in fields[1:7]]
    want = IDLE_POLL.get(platform.machine())
    assert want is not None, f"no idle poll() syscall numbers for {platform.machine()}: add them to IDLE_POLL"
    return nr in want and args[1] == 2 and (args[2] & 0xFFFFFFFF) == want[nr]


def test_idle_board_sleeps(board, dev):
    """With nothing in flight the harness blocks in poll() without a timeout (so an idle simulated
    board burns no CPU: it needs LinkedCore.idle), and wakes up for the next request."""
    dev.info()
    pid = board.process.pid
    give_up = time.monotonic() + 60                 # a hang guard, not a timing requirement
    while not _in_idle_poll(pid):
        assert time.monotonic() < give_up, \
            f"the harness never blocked in its idle poll(): /proc/{pid}/syscall " + open(f"/proc/{pid}/syscall").read()
        time.sleep(0.01)
    assert dev.info()["magic"] == "EQFP"


def test_status_leds_and_idle_in_rtl_sim():
    """LinkedCore in Amaranth's simulator: idle, busy and the sticky error LED around a BAD_CRC and
    an OK reply (bits sent and received by the testbench at divisor 4)."""
    from amaranth.sim import Simulator

    from eqfpga.hdl.link import LinkedCore

    D = 4
    dut = LinkedCore(CFG, divisor=D, clk_hz=1_000_000)
    bad = bytearray(frame(SYNC_REQUEST, 9, Cmd.INFO, b""))
    bad[-1] ^= 0x80
    good = frame(SYNC_REQUEST, 10, Cmd.INFO, b"")
    log = {}

    async def send(ctx, data):
        for b in data:
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(D)

    async def receive(ctx, n):
        out = []
        while len(out) < n:
            await ctx.tick().until(~dut.tx)
            await ctx.tick().repeat(D // 2 + D)
            v = 0
            for i in range(8):
                v |= ctx.get(dut.tx) << i
                await ctx.tick().repeat(D)
            out.append(v)
        return bytes(out)

    async def bench(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(10)
        log["idle0"] = ctx.get(dut.idle)
        await send(ctx, bad)
        log["idle_busy"] = ctx.get(dut.idle)
        log["err_reply"] = await receive(ctx, 10)
        await ctx.tick().repeat(3 * D)
        log["status_err"] = ctx.get(dut.status)
        log["idle1"] = ctx.get(dut.idle)
        await send(ctx, good)
        log["ok_reply"] = await receive(ctx, 9 + 22)
        await ctx.tick().repeat(3 * D)
        log["status_ok"] = ctx.get(dut.status)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert log["idle0"] == 1 and log["idle_busy"] == 0 and log["idle1"] == 1
    assert log["err_reply"] == frame(SYNC_REPLY, 9, Status.BAD_CRC, b"\x00")
    assert log["ok_reply"] == frame(SYNC_REPLY, 10, Status.OK, info_payload(CFG, clk_hz=1_000_000, divisor=D))
    assert log["status_err"] & 0b101 == 0b100          # error LED on, core not busy
    assert log["status_err"] & 0b010                    # rx activity, stretched
    assert log["status_ok"] & 0b100 == 0                # cleared by the OK reply


def test_seed_frames_as_documented():
    """The SET_SEED / GET_SEED frames of docs/protocol.md, byte for byte."""
    assert frame(SYNC_REQUEST, 0x12, Cmd.SET_SEED, struct.pack("<I", 42)).hex(" ").upper() == \
        "A5 12 09 04 00 2A 00 00 00 A0 A1 3A 9A"
    assert frame(SYNC_REPLY, 0x12, Status.OK, b"").hex(" ").upper() == "5A 12 00 00 00 08 40 54 DB"
    assert frame(SYNC_REQUEST, 0x13, Cmd.GET_SEED, b"").hex(" ").upper() == "A5 13 0A 00 00 BB A2 7F 6E"
    assert frame(SYNC_REPLY, 0x13, Status.OK, struct.pack("<I", 42)).hex(" ").upper() == \
        "5A 13 00 04 00 2A 00 00 00 ED E4 08 C3"
