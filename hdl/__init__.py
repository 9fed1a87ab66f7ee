"""eqfpga.hdl: the Amaranth 0.5 gateware of the EqProp trainer (never imports torch).

``core.EPCore`` is the whole core for one ``EPConfig`` (ports in its module docstring);
``generate.generate(cfg, out_dir)`` writes its Verilog and a resource/schedule report. Building
blocks: ``fixed`` (RFC 41-style fixed point), ``arx_hash`` (the random source), the core's parts
(``controller``, ``loader``, ``lane``, ``root``, ``trees``, ``ops``), ``plan`` (memory map and
schedule), ``memory_map`` (``memory_views``: the core's memories as the simulators read them).
docs/hardware.md has the picture.
"""
