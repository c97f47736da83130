"""The committed results of each profile come from one run: every file is in its manifest, with its hash."""

import json
import subprocess
from pathlib import Path

import pytest

from dpbert.reporting.manifest import MANIFEST, check_manifest, config_hash, manifest

ROOT = Path(__file__).resolve().parents[2]


def _committed() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "results", "figures"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [f for f in out.splitlines() if "/logs/" not in f and not f.endswith(".gitkeep")]


def _profiles(files: list[str]) -> dict[str, list[str]]:
    """profile -> its committed files (the demo's are results/* and figures/* at the top level)."""
    out: dict[str, list[str]] = {}
    for f in files:
        parts = Path(f).parts
        profile = parts[1] if len(parts) > 2 else "demo"
        out.setdefault(profile, []).append(f)
    return out


def test_every_committed_profile_is_one_run():
    for profile, files in _profiles(_committed()).items():
        results = ROOT / "results" if profile == "demo" else ROOT / "results" / profile
        path = results / MANIFEST
        rel = path.relative_to(ROOT).as_posix()
        assert rel in files, f"{profile}: committed results without {rel}: rebuild the profile in one run"
        problems = check_manifest(path, ROOT, [f for f in files if f != rel])
        assert not problems, f"{profile}: " + "; ".join(problems)
        assert json.loads(path.read_text())["profile"] == profile


def test_check_manifest_finds_a_file_of_another_run(tmp_path):
    (tmp_path / "results").mkdir()
    a, b = tmp_path / "results" / "table1.md", tmp_path / "results" / "health.md"
    a.write_text("one run")
    b.write_text("one run too")
    data = manifest([a, b], root=tmp_path, commit="abc", config_digest=config_hash({"x": 1}), profile="demo")
    (tmp_path / "results" / MANIFEST).write_text(json.dumps(data))
    present = ["results/table1.md", "results/health.md"]
    assert check_manifest(tmp_path / "results" / MANIFEST, tmp_path, present) == []
    b.write_text("rebuilt by another run")
    assert any("health.md: differs" in p for p in check_manifest(tmp_path / "results" / MANIFEST, tmp_path, present))
    assert any("extra.csv: committed but not in" in p
               for p in check_manifest(tmp_path / "results" / MANIFEST, tmp_path, present + ["results/extra.csv"]))
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
