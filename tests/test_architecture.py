"""The folder tree is the pipeline and imports point one way (docs/architecture.md).

The contracts live in pyproject.toml ([tool.importlinter]); import-linter checks them. A
function-level import of the package's own modules is allowed only where it keeps a command
fast (the CLI loads what one command needs) and says so with a `# lazy:` comment: a lazy import
that exists to hide a cycle is a cycle.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "verifier" / "imagelock"
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def _lint_imports(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--no-cache", str(config)], cwd=root, capture_output=True,
                          text=True, timeout=300)


def test_import_contracts_are_kept() -> None:
    r = _lint_imports(REPO / "verifier", REPO / "pyproject.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_a_forbidden_import_breaks_the_contract(tmp_path: Path) -> None:
    """The check can fail: formats importing the CLI (a stage reaching up) is reported."""
    shutil.copytree(PACKAGE, tmp_path / "imagelock", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    common = tmp_path / "imagelock" / "formats" / "common.py"
    common.write_text(common.read_text() + "\nfrom imagelock import cli  # noqa\n")
    r = _lint_imports(tmp_path, tmp_path / "pyproject.toml")
    assert r.returncode != 0
    assert "imagelock.formats is not allowed to import imagelock.cli" in r.stdout
    assert "imagelock.formats.common -> imagelock.cli" in r.stdout


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("imagelock"):
                # A `# lazy:` comment covers the block of imports right below it.
                i = node.lineno - 2
                while i >= 0 and lines[i].strip().startswith(("from ", "import ", ")")):
                    i -= 1
                context = " ".join(lines[max(0, i):node.end_lineno])
                if "# lazy:" not in context:
                    found.append((node.lineno, node.module or ""))
    return found


def test_no_function_level_import_hides_a_cycle() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "cli.py":
            continue  # the CLI imports per command by design: a command loads only what it needs
        offenders += [f"{path.relative_to(REPO)}:{line} {mod}"
                      for line, mod in _function_level_imports(path)]
    assert not offenders, ("function-level imports without a `# lazy:` reason (fix the import "
                           "direction instead):\n" + "\n".join(offenders))


def test_every_stage_is_a_package_and_nothing_is_loose() -> None:
    """The package root holds stage packages plus the CLI, the public API and the version."""
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "api.py", "cli.py"], loose
    stages = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert stages == sorted(["build", "cli_display", "compare", "core", "fetch", "fleet",
                             "formats", "inputs", "lock", "oci", "rebuild", "sandbox", "sbom",
                             "tar", "trust"]), stages
