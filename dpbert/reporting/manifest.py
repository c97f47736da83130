"""The stamp of a profile's committed results: which commit and config produced every file, and its hash.

Why: results/ and figures/ are committed, and a reader must be able to tell that every file of one profile
comes from one run of one commit and config. The last reporting rule writes ``manifest.json`` listing each
output with its sha256; tests/reporting/test_manifest.py fails when a committed file of a profile is
missing from its manifest or differs from the hash recorded there (a file rebuilt by another run).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    """A short hash of the resolved config (keys sorted), the same however the YAML was laid out."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_commit(repo: str | Path) -> str:
    """HEAD's commit, with "-dirty" when tracked files differ from it (what produced the files); "unknown"
    outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results", ":(exclude)figures"], cwd=repo, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def manifest(files: Sequence[str | Path], *, root: str | Path, commit: str, config_digest: str,
             profile: str) -> dict[str, Any]:
    root = Path(root)
    return {"profile": profile, "commit": commit, "config_hash": config_digest,
            "files": {Path(f).resolve().relative_to(root.resolve()).as_posix(): file_sha256(f)
                      for f in sorted(map(str, files))}}


def check_manifest(path: str | Path, root: str | Path, present: Sequence[str]) -> list[str]:
    """What is wrong with a committed manifest: files of the profile it does not list, files it lists that
    are missing, and files whose content is not the one it records. ``present``: the profile's committed
    files (paths relative to ``root``)."""
    data = json.loads(Path(path).read_text())
    listed = data["files"]
    problems = [f"{f}: committed but not in {MANIFEST} (another run's file)" for f in sorted(set(present) - set(listed))]
    for rel, digest in sorted(listed.items()):
        file = Path(root) / rel
        if not file.is_file():
            problems.append(f"{rel}: listed in {MANIFEST} but missing")
        elif file_sha256(file) != digest:
            problems.append(f"{rel}: differs from the run that wrote {MANIFEST} (commit {data['commit']})")
    return problems


def write_manifest(*, files: Sequence[str], out: str, root: str, code: str, config: Mapping[str, Any],
                   profile: str) -> dict:
    """``root``: what the listed paths are relative to (the workflow's working folder); ``code``: the checkout
    whose commit ran."""
    from dpbert.run.runtime import atomic_write_text

    data = manifest(files, root=root, commit=git_commit(code), config_digest=config_hash(config), profile=profile)
    atomic_write_text(out, json.dumps(data, indent=2) + "\n")
    return data
