"""Benchmarks: one run measures accuracy, speed, resources, simulation throughput and scaling.

``run_bench(spec)`` (``eqfpga bench [--quick]``) writes into ``out_dir`` (default ``docs``):

* ``benchmarks.md``: the report; every table and plot names the command that produced it;
* ``benchmarks.json``: the raw figures, the command, the date, the machine and its load;
* ``bench-curves.png`` (test error vs training samples: float golden, fixed golden, RTL),
  ``bench-precision.png`` (the precision study), ``bench-cycles.png`` (cycles per training sample
  by phase against the ideal bound), ``bench-scaling.png`` (cycles, memory, multipliers, LUTs and
  Fmax vs hidden size and P).

Modules, one job each: ``spec`` (:class:`RunSpec`, the sizes of a run), ``accuracy``,
``precision``, ``speed``, ``simulation``, ``scaling`` (the sections), ``rtl`` (the Verilator runs
they share), ``cycles`` (the plan's cycles by phase), ``synthesis`` (core syntheses for the
scaling fit), ``reports`` (build reports, read as ``BuildReport``), ``published`` (the quoted
figures, ``published.json``), ``markdown`` and ``plots`` (the page), ``run`` (``run_bench``).

Figures are lower bounds on speed when other jobs share the cores: the JSON records the load
average before and after each section.
"""
from .run import run_bench
from .spec import RunSpec

__all__ = ["run_bench", "RunSpec"]
