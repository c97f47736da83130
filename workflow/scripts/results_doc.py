"""Snakemake script: docs/results.md from the committed results of every profile and each profile's plan."""

import json
import sys
from pathlib import Path

sys.path.insert(0, snakemake.params.root)  # noqa: F821

from dpbert.reporting.results_doc import BENCH_FILES, build_results_doc, read_profile  # noqa: E402
from dpbert.run.runtime import atomic_write_text, setup  # noqa: E402
from dpbert.tools.plan import plan_from_config  # noqa: E402

sm = snakemake  # noqa: F821
setup(sm.log[0], threads=1)
profiles = [read_profile(p) for p in sm.params.profiles]
plans = {name: plan_from_config(Path(path), Path(sm.params.root), [1, 4, 16]) for name, path in sm.params.plans.items()}
benches = {key: json.loads(Path(path).read_text()) for key, path in BENCH_FILES.items() if Path(path).is_file()}
atomic_write_text(sm.output[0], build_results_doc(profiles, plans, benches))
