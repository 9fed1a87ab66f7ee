"""eqfpga.bench: the cheap sections, the run configuration, the report readers, the JSON schema and
the markdown writer (no RTL, no synthesis, synthetic MNIST-shaped data: seconds, not minutes)."""
import json
import re

import numpy as np
import pytest

from eqfpga.bench import RunSpec, run_bench
from eqfpga.bench import run as bench_run
from eqfpga.bench import synthesis
from eqfpga.bench.cycles import cycles_by_phase
from eqfpga.bench.published import published
from eqfpga.bench.reports import board_figures, find_board_reports
from eqfpga.bench.scaling import bench_scaling, fit_luts, synth_configs
from eqfpga.bench.spec import SYNTH_POINTS_QUICK
from eqfpga.bench.speed import bench_speed, compare, link_bytes
from eqfpga.bench.stats import stats
from eqfpga.boards.report import BuildReport, ReportError, Resource
from eqfpga.golden.config import load_config
from eqfpga.golden.data import MNIST
from eqfpga.hdl.plan import Plan
from eqfpga.hdl.protocol import TRAIN_REPLY_BYTES, encode_pixels, train_request_bytes


def fake_mnist(n_train=40, n_test=60, seed=0):
    """MNIST-shaped random digits: ~150 non-zero pixels of 784, as real digits."""
    rng = np.random.default_rng(seed)

    def imgs(n):
        x = rng.integers(1, 256, (n, 784)).astype(np.uint8)
        x[rng.random((n, 784)) > 150 / 784] = 0
        return x
    return MNIST(imgs(n_train), rng.integers(0, 10, n_train).astype(np.uint8),
                 imgs(n_test), rng.integers(0, 10, n_test).astype(np.uint8))


def board_report(cfg, *, board="ulx3s-85f", fmax=52.5, clock=48.0, baud=3_000_000, **kw) -> BuildReport:
    """A board build report of ``cfg`` in the one schema ``eqfpga build`` writes."""
    fields = dict(kind="board", family="ecp5", device="LFE5U-85F", package="CABGA381", config=cfg.to_dict(),
                  target_mhz=clock, fmax_mhz=fmax, routed=True, status="routed",
                  resources={"LUT4": Resource(20000, 83640)}, times_s={"total_s": 1.0}, board=board,
                  uart={"baud": baud, "divisor": 16, "error_pct": 0.0})
    fields.update(kw)
    return BuildReport(**fields)


def test_stats():
    s = stats([0.1, 0.2, None, 0.3])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.2) and s["std"] == pytest.approx(0.1)
    assert (s["min"], s["max"]) == (0.1, 0.3)
    assert stats([])["mean"] is None and stats([5])["std"] == 0.0


def test_cycles_by_phase_matches_plan():
    cfg = load_config("mnist-1h")
    pl = Plan(cfg)
    v, f = np.array([100, 150, 200]), np.array([1, 2, 1])
    c = cycles_by_phase(cfg, v, f)
    want = sum(pl.sample_cycles(int(a))["total"] * int(b) for a, b in zip(v, f)) / 4
    assert c["schedule"]["total"] == pytest.approx(want)
    parts = sum(x for k, x in c["schedule"].items() if k != "total")
    assert parts == pytest.approx(want)           # the phases add up to the schedule
    ideal = sum(pl.ideal_cycles(int(a)) * int(b) for a, b in zip(v, f)) / 4
    assert c["ideal"]["total_ceil"] == pytest.approx(ideal)
    assert c["ideal"]["total"] <= c["ideal"]["total_ceil"] <= c["schedule"]["total"]
    assert 0 < c["efficiency"] <= 1
    assert c["macs"]["total"] == pytest.approx(c["ideal"]["total"] * pl.P)


def test_link_bytes_are_the_protocol_encoders():
    px = [0] * 300 + [7, 0, 255] + [0] * 10
    # a run of 300 zeros: 256 + 44 -> two (0, r) pairs; then 7, (0, 0), 255, (0, 9)
    assert encode_pixels(np.array(px), 8) == bytes([0, 255, 0, 43, 7, 0, 0, 255, 0, 9])
    cfg, images = load_config("mnist-1h"), fake_mnist().train_images
    lb = link_bytes(cfg, images)
    want = np.mean([len(encode_pixels(row, 8)) for row in images.astype(np.int64)])   # input_frac 8: LSBs = bytes
    assert cfg.fixed.input_frac == 8 and lb["pixel_bytes_mean"] == want and lb["images"] == len(images)
    assert lb["request_bytes_mean"] == pytest.approx(lb["pixel_bytes_mean"] + train_request_bytes(0))
    assert train_request_bytes(0) == 5 + 1 + 4                   # header, label, CRC-32 (docs/protocol.md)
    assert lb["reply_bytes"] == TRAIN_REPLY_BYTES == 5 + 1 + 4   # header, prediction, CRC-32
    assert lb["encoder"] == "eqfpga.hdl.protocol.encode_pixels"


def test_scaling_from_plan_and_fit():
    cfg = load_config("mnist-1h").replace(parallelism=16)     # 32..256 hidden neurons: 2..16 a lane
    v, f = np.array([150]), np.array([1])
    pts = [{"config": f"p{P}", "sizes": [12, 8, 3], "P": P, "LUT4": 1000 + 500 * P + d, "fmax_mhz": fm,
            "routed": False, "TRELLIS_FF": 1, "MULT18X18D": 3 * P, "DP16KD": 0, "made": "test"}
           for P, d, fm in ((2, 10, 30.0), (4, -20, 28.0), (8, 10, 26.0))]
    check = {"sizes": [784, 128, 10], "P": 16, "LUT4": 9000, "fmax_mhz": 25.0, "report": "x", "made": "test"}
    sc = bench_scaling(cfg, v, f, hidden=(32, 64, 128, 256), Ps=(4, 8, 16), synth=pts, check=check)
    h, p = sc["vs_hidden"], sc["vs_P"]
    assert len(h) >= 4 and len(p) >= 3
    assert [r["sizes"][1] for r in h] == [32, 64, 128, 256]
    assert all(a["cycles"] < b["cycles"] for a, b in zip(h, h[1:]))        # more neurons, more cycles
    assert all(a["memory_bits"] < b["memory_bits"] for a, b in zip(h, h[1:]))
    assert all(a["cycles"] > b["cycles"] for a, b in zip(p, p[1:]))        # more lanes, fewer cycles
    assert [r["multipliers"] for r in p] == [4, 8, 16]                    # one a lane
    assert h[2]["cycles"] == pytest.approx(Plan(cfg).sample_cycles(150)["total"])
    fit = sc["fit"]
    assert fit["b"] == pytest.approx(500, rel=0.05) and len(fit["loo_rel_errors"]) == 3
    assert fit["fmax_mhz"] == 28.0 and fit["fmax_rel_spread"] == pytest.approx(2 / 28)
    assert all("LUT4_estimate" in r for r in h + p)
    assert sc["check"]["LUT4_rel_error"] == pytest.approx((fit["a"] + 16 * fit["b"] - 9000) / 9000)


def test_board_figures_read_a_build_report(tmp_path):
    cfg = load_config("mnist-1h")
    d = tmp_path / "ulx3s-85f-mnist-1h"
    d.mkdir()
    board_report(cfg).save(d / "report.json")
    found = find_board_reports(cfg, build_root=tmp_path)
    b = {x["board"]: x for x in board_figures(found, cfg)}["ulx3s-85f"]
    assert b["built"] and b["fmax_mhz"] == 52.5 and b["clock_mhz"] == 48.0 and b["baud"] == 3e6
    assert b["resources"]["LUT4"] == 20000


def test_board_figures_read_a_boards_folder_and_refuse_another_schema(tmp_path):
    """Committed reports (docs/boards) are read through BuildReport.load; a file of another schema
    is an error naming the file and what to do, never a guess at its key names."""
    cfg = load_config("mnist-1h")
    boards = tmp_path / "boards"
    boards.mkdir()
    board_report(cfg, fmax=64.9, clock=45.0).save(boards / "ulx3s-85f-mnist-1h.json")
    board_report(cfg, board="other", config=load_config("tiny").to_dict()).save(boards / "other-tiny.json")
    found = find_board_reports(cfg, build_root=tmp_path / "build", boards_dir=boards)
    assert [f["board"] for f in found] == ["ulx3s-85f"]                  # the tiny report is another net
    assert board_figures(found, cfg)[0]["fmax_mhz"] == 64.9
    old = {"board": "ulx3s-85f", "config": {"name": "mnist-1h"}, "clock_mhz": 48.0, "fmax_mhz": 52.5,
           "timing_met": True, "uart": {"baud": 3000000}, "resources": {"LUT4": {"used": 20000, "available": 83640}}}
    (boards / "ulx3s-85f-old.json").write_text(json.dumps(old))
    with pytest.raises(ReportError, match=r"ulx3s-85f-old\.json: not a build report of schema .*eqfpga build"):
        find_board_reports(cfg, build_root=tmp_path / "build", boards_dir=boards)


def test_board_reports_match_the_net_not_the_name(tmp_path):
    """A preset's name is not its net: a committed report of mnist-1h at another P does not speak for
    the preset; one in a subfolder of the boards folder (docs/boards/lane-local) with its P does."""
    cfg = load_config("mnist-1h")
    boards = tmp_path / "boards"
    (boards / "lane-local").mkdir(parents=True)
    board_report(cfg, fmax=63.7, config=cfg.replace(parallelism=8).to_dict()).save(boards / "ulx3s-85f-mnist-1h.json")
    board_report(cfg, fmax=67.4, config=cfg.replace(name="mnist-1h-twin").to_dict()).save(
        boards / "lane-local" / "ulx3s-85f-twin.json")
    found = find_board_reports(cfg, build_root=tmp_path / "build", boards_dir=boards)
    assert [f["report"].fmax_mhz for f in found] == [67.4]


def test_a_core_synthesis_speaks_only_for_boards_it_can_describe():
    """An ECP5 core synthesis stands in for an unbuilt ECP5 board, never for a board the config does
    not fit or of another family (the first full run gave the iCEBreaker mnist-1h an ECP5 Fmax)."""
    cfg = load_config("mnist-1h")
    synth = {"path": "x/report.json", "fmax_mhz": 61.9, "fresh": True,
             "status": "placed", "P": 8, "sizes": [784, 128, 10], "resources": {"MULT18X18D": 25}}
    sp = bench_speed(cfg, fake_mnist(), boards=board_figures([], cfg), core_synth=synth)
    b = {x["board"]: x for x in sp["boards"]}
    assert b["ulx3s-85f"]["fmax_used_mhz"] == 61.9 and b["ulx3s-85f"]["fmax"]["mhz"] == 61.9
    assert b["icebreaker"]["fits"] is False and "does not fit" in b["icebreaker"]["precheck"]
    assert b["icebreaker"]["fmax_used_mhz"] is None and b["icebreaker"]["fmax"] is None
    assert not any("icebreaker" in r["system"] for r in compare(sp))


def test_run_spec_round_trip():
    for spec in (RunSpec.quick(), RunSpec.full(),
                 RunSpec.quick(train=5, sections=("speed",), synth_budget=None, config="tiny", rtl=False)):
        assert RunSpec.from_json(spec.to_json()) == spec
        assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    q = RunSpec.quick()
    assert q.command == "eqfpga bench --quick" and RunSpec.full().command == "eqfpga bench"
    assert q.synth_points == SYNTH_POINTS_QUICK and isinstance(RunSpec.from_json(q.to_json()).synth_points[0], tuple)
    with pytest.raises(ValueError, match="unknown fields.*'trian'"):
        RunSpec.from_dict({**q.to_dict(), "trian": 5})
    with pytest.raises(ValueError, match="missing fields.*'train'"):
        RunSpec.from_dict({k: v for k, v in q.to_dict().items() if k != "train"})
    with pytest.raises(ValueError, match="unknown sections"):
        RunSpec.quick(sections=("accuracy", "speeed"))


def test_published_figures():
    p = published()
    assert p.boards == ("ulx3s-85f", "icebreaker") and len(p.ep_accuracy) == 5 and len(p.rbm_trainers) == 3
    for s in p.on_chip_learners:        # connections of an MLP: the sum of its layers' products
        if s["connections"] is not None:
            n = [int(x) for x in s["net"].split("-")]
            assert s["connections"] == sum(a * b for a, b in zip(n, n[1:]))


def test_run_bench_writes_report(tmp_path, monkeypatch):
    """The whole writer on a tiny run: golden accuracy, speed, scaling (no RTL, no synthesis)."""
    monkeypatch.setenv("EQFPGA_BUILD_DIR", str(tmp_path / "build"))
    spec = RunSpec.quick(train=30, test=60, seeds=(0, 1), curve=(10, 20, 30), rtl=False, synth=False,
                         torch_b1=20, torch_batched=40, torch_batches=(20,), torch_repeats=2,
                         study_widths=(12, 16), study_train=20,
                         sections=("accuracy", "precision", "speed", "scaling"))
    res = run_bench(spec, out_dir=tmp_path, data=fake_mnist(), log=lambda *a: None)
    j = json.loads((tmp_path / "benchmarks.json").read_text())
    assert j["meta"]["schema"] == bench_run.SCHEMA and j["meta"]["command"] == "eqfpga bench --quick"
    assert RunSpec.from_dict(j["meta"]["mode"]) == spec
    for k in ("date", "machine", "load_before", "load_after", "duration_s", "git", "section_times_s"):
        assert k in j["meta"]
    a = j["accuracy"]
    for arith in ("float", "fixed"):
        assert a[arith]["test_error"]["n"] == 2
        assert [p["samples"] for p in a[arith]["runs"][0]["curve"]] == [10, 20, 30]
    sp = j["speed"]
    assert sp["cycles"]["schedule"]["total"] > sp["cycles"]["ideal"]["total"] > 0
    assert set(sp["torch"]["runs"]) == {"1", "20"} and sp["torch"]["runs"]["1"]["samples_per_s"]["n"] == 2
    assert any(b["board"] == "ulx3s-85f" for b in sp["boards"]) and "not measured" in sp["energy"]
    assert len(j["scaling"]["vs_hidden"]) >= 4 and len(j["scaling"]["vs_P"]) >= 3
    assert not res["failed"] and len(j["precision"]["rows"]) == 6
    for png in ("bench-curves.png", "bench-precision.png", "bench-cycles.png", "bench-scaling.png"):
        assert (tmp_path / png).stat().st_size > 1000
    md = (tmp_path / "benchmarks.md").read_text()
    assert res["meta"]["quick"] and "## 1. Accuracy (quick)" in md and "## 4. Scaling (quick)" in md
    assert "Energy is not measured" in md
    # every measured table and every plot is followed by the line naming its command
    lines = md.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith("|"):
            j0 = i
            while i < len(lines) and lines[i].startswith("|"):
                i += 1
            blocks.append((j0, i))
        elif lines[i].startswith("!["):
            blocks.append((i, i + 1))
            i += 1
        else:
            i += 1
    assert len(blocks) >= 8
    for a0, a1 in blocks:
        before = " ".join(lines[max(0, a0 - 3):a0])
        after = " ".join(lines[a1:a1 + 2])
        cited = re.search(r"published|EP-NOTES", before, re.I)
        assert "`eqfpga bench --quick`" in after or cited, f"table/plot at line {a0 + 1} names no command"


def test_synth_points_go_through_build_core(tmp_path, monkeypatch):
    """synth_point builds each point with build_core in one folder per config, so build_core's own
    reuse of earlier results in that folder serves the next run; the figures come from its BuildReport."""
    calls = []

    def fake_build_core(cfg, out_dir, **kw):
        """As build_core: synthesise (and write report.json) only when out_dir has no result yet."""
        path = out_dir / "report.json"
        if not path.exists():
            calls.append(kw)
            out_dir.mkdir(parents=True, exist_ok=True)
            board_report(cfg, kind="core", board=None, uart=None, fmax=30.0 + cfg.parallelism, clock=100.0,
                         routed=kw["route"], resources={k: Resource(100 * cfg.parallelism) for k in
                                                        ("LUT4", "TRELLIS_FF", "MULT18X18D", "DP16KD")}).save(path)
        return BuildReport.load(path)
    monkeypatch.setattr(synthesis, "build_core", fake_build_core)
    cfgs = synth_configs(SYNTH_POINTS_QUICK)
    assert [c.parallelism for c in cfgs] == [2, 4, 8] and all(c.sizes == (12, 8, 3) for c in cfgs)
    a = [synthesis.synth_point(c, route=False, root=tmp_path, log=lambda *x: None) for c in cfgs]
    b = [synthesis.synth_point(c, route=False, root=tmp_path, log=lambda *x: None) for c in cfgs]
    assert len(calls) == 3 and all(c["route"] is False for c in calls)
    assert all(p["made"].startswith("this run") for p in a) and all(p["made"] == "cached" for p in b)
    assert [p["LUT4"] for p in b] == [200, 400, 800] and all(p["routed"] is False for p in b)
    fit = fit_luts(b)
    assert fit["b"] == pytest.approx(100) and max(abs(e) for e in fit["loo_rel_errors"]) < 1e-9


def test_a_failing_section_is_reported(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("no simulator here")
    monkeypatch.setenv("EQFPGA_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(bench_run, "bench_speed", boom)
    res = run_bench(RunSpec.quick(sections=("speed", "scaling"), synth=False, rtl=False), out_dir=tmp_path,
                    data=fake_mnist(), log=lambda *a: None)
    assert "speed" in res["failed"] and "scaling" in res
    md = (tmp_path / "benchmarks.md").read_text()
    assert "Failed in this run" in md and "no simulator here" in md
