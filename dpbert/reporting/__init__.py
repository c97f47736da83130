"""Reporting jobs: read run records (``records``), select one point per cell (``selection``), one
module per table, the figures, the health table, the reproduction report, GLUE submission files."""
