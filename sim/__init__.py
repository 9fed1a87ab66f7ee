"""eqfpga.sim."""
