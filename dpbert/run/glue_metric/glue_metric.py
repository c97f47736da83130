"""GLUE metrics as an ``evaluate`` module of the project's own, loaded by path (no hub):

    import evaluate
    from dpbert.run.glue_metric import METRIC_DIR
    glue = evaluate.load(str(METRIC_DIR), "mrpc")   # or dpbert.run.glue_metric.load("mrpc")
    glue.compute(predictions=[1, 0, 1], references=[1, 1, 1])   # {'accuracy': 0.666..., 'f1': 0.8}

The config names and result keys are those of the hub's ``glue`` metric (cola: matthews_correlation;
stsb: pearson, spearmanr; mrpc, qqp: accuracy, f1; the others: accuracy), as fractions in [0, 1] (or
[-1, 1]). The values come from :mod:`dpbert.run.metrics` (scikit-learn and scipy.stats), the one
implementation of the formulas, which differs from the hub's metric in one documented way: an undefined
correlation (a constant side, fewer than 2 points) is 0.0, not NaN. STS-B scores are read as float64 (the
hub's metric casts them to float32).

evaluate copies this file into its modules cache and imports it from there; the package it imports,
``dpbert``, is checked importable by evaluate (it is: this module is loaded through dpbert.run.glue_metric).
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

from dpbert.run.metrics import accuracy, f1_binary, matthews_corrcoef, pearson, spearman

CONFIGS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte",
           "wnli", "hans")

_DESCRIPTION = "GLUE metrics (accuracy, F1 of class 1, Matthews correlation, Pearson/Spearman), offline."
_CITATION = """\
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={ICLR}, year={2019}
}"""
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels (stsb: predicted scores).
    references: gold labels (stsb: gold scores).
Returns: cola: matthews_correlation; stsb: pearson, spearmanr; mrpc, qqp: accuracy, f1; else accuracy.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GlueMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(
                f"glue_metric has no config {self.config_name!r}: use one of {', '.join(CONFIGS)} (the hub "
                "glue metric's config names, e.g. evaluate.load(METRIC_DIR, 'mrpc'))."
            )
        kind = "float64" if self.config_name == "stsb" else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(kind), "references": datasets.Value(kind)}),
            format=None,  # Python lists: evaluate's "numpy" format hands float64 scores over as float32
        )

    def _compute(self, predictions, references):
        p, y = np.asarray(predictions).reshape(-1), np.asarray(references).reshape(-1)
        if p.size == 0:
            raise ValueError("glue_metric got no predictions: pass at least one prediction and its reference.")
        if self.config_name == "cola":
            return {"matthews_correlation": matthews_corrcoef(p, y)}
        if self.config_name == "stsb":
            return {"pearson": pearson(p, y), "spearmanr": spearman(p, y)}
        if self.config_name in ("mrpc", "qqp"):
            return {"accuracy": accuracy(p, y), "f1": f1_binary(p, y)}
        return {"accuracy": accuracy(p, y)}
