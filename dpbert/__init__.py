"""DPBERT reproduction harness: shared core and the DPBERT method."""
