"""Benchmarks are skipped in the normal test run (pyproject adds --benchmark-skip).

Run them with:  python -m pytest tests/benchmarks --benchmark-only --benchmark-json=results/benchmarks.json
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
