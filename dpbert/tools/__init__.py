"""Command-line tools: the run planner (``python -m dpbert.tools.plan``), the speed-up bench,
the synthetic-data check and the state probe."""
