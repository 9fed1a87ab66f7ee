"""eqfpga.hdl."""
