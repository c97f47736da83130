"""Declared dependencies are the ones the code uses: each is imported by dpbert, baselines or the
workflow, and environment.yml lists the same packages as pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
IMPORT_NAMES = {"pyyaml": "yaml"}  # distribution -> module, where they differ beyond - vs _
# packages the code uses through another package, never imported by name: distribution -> the call that needs it
USED_THROUGH = {"tabulate": r"\.to_markdown\("}  # pandas' DataFrame.to_markdown imports tabulate
SOURCES = [*ROOT.glob("dpbert/**/*.py"), *ROOT.glob("baselines/**/*.py"), *ROOT.glob("workflow/**/*.py"),
           *ROOT.glob("workflow/**/*.smk"), ROOT / "Snakefile"]


def name_of(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0).lower().replace("-", "_")


def declared() -> list[str]:
    return [name_of(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]


def unimported(packages: list[str]) -> list[str]:
    text = "\n".join(p.read_text() for p in SOURCES)
    return [p for p in packages
            if not re.search(USED_THROUGH.get(p, rf"^\s*(import|from)\s+{re.escape(IMPORT_NAMES.get(p, p))}\b"), text,
                             re.MULTILINE)]


def test_every_declared_dependency_is_imported():
    assert unimported(declared()) == [], "declared in pyproject.toml, imported nowhere in dpbert/baselines/workflow"


def test_the_check_finds_a_dead_dependency():
    assert unimported(["requests", "ujson", "pyyaml"]) == ["requests", "ujson"]


def test_a_package_used_through_another_is_found_by_its_call(monkeypatch):
    monkeypatch.setitem(USED_THROUGH, "tabulate", r"\.no_such_call\(")
    assert unimported(["tabulate", "scipy"]) == ["tabulate"]
    monkeypatch.setitem(USED_THROUGH, "tabulate", r"^from scipy import stats")
    assert unimported(["tabulate"]) == []


def test_test_and_cluster_packages_are_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not {"pytest", "pytest_benchmark", "snakemake_executor_plugin_slurm"} & set(declared())
    extras = {k: [name_of(r) for r in v] for k, v in project["optional-dependencies"].items()}
    assert extras["test"] == ["pytest", "pytest_benchmark", "scikit_learn", "snakemake_executor_plugin_slurm"]
    assert extras["slurm"] == ["snakemake_executor_plugin_slurm"]


def test_environment_yml_lists_what_pyproject_declares():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pip = [r for d in env if isinstance(d, dict) for r in d["pip"]]
    listed = [name_of(d) for d in env if isinstance(d, str)] + [name_of(r) for r in pip]
    assert sorted(set(listed) - {"python", "pip"}) == sorted(declared())
