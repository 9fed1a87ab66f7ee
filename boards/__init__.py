"""eqfpga.boards."""
