"""eqfpga.tools."""
