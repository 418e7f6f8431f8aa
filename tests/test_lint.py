"""The code stays clean: ruff on everything, mypy --strict on the package (pyproject.toml holds
both configurations)."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def test_ruff_is_clean() -> None:
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "verifier", "tests", "bench"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_is_clean() -> None:
    r = subprocess.run([sys.executable, "-m", "mypy", "verifier/imagelock"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
