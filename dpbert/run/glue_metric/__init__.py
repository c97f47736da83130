"""The project's GLUE metric as an ``evaluate`` module, served from this folder (no hub download)."""

from __future__ import annotations

from pathlib import Path

METRIC_DIR = Path(__file__).resolve().parent  # evaluate.load(str(METRIC_DIR), config) finds glue_metric.py here


def load(config_name: str, **kwargs):
    """``evaluate.load`` of the project's glue_metric for a GLUE config name (cola, sst2, mrpc, stsb, ...)."""
    import evaluate

    return evaluate.load(str(METRIC_DIR), config_name, **kwargs)
