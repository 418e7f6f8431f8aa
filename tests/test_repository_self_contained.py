"""A fresh clone is all the project needs: no file of the code, tests, scripts, benchmarks, CI,
docs or examples refers to a path outside the repository (a folder beside the clone, the machine
it was written on, notes that were never committed). A person who clones the project has none
of those, so a test that read them would fail there, or worse, pass vacuously."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import REPO

SCANNED_DIRS = ("verifier", "tests", "scripts", "bench", ".ci", "docs", "spec", "examples")
SCANNED_FILES = ("README.md", "pyproject.toml")
SKIPPED_DIRS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".venv"}
# This file spells the forbidden patterns out; every other file is scanned.
THIS = Path(__file__).resolve()

# (pattern, what it points at). Each line of every text file is matched against all of them.
FORBIDDEN = [
    (re.compile(r"\.\./+shared\b"), "the `shared` folder beside the repository"),
    (re.compile(r"""\bparents?\b(\[\d+\])?\s*/\s*["']shared\b"""),
     "the `shared` folder beside the repository"),
    (re.compile(r"\b(REPO|ROOT)\.parent\b"), "the directory that holds the repository"),
    (re.compile(r"FIELD-NOTES"), "notes kept outside the repository: cite docs/field-notes.md"),
    (re.compile(r"""(?<![\w.~-])/work(?=[/"'\s:]|$)"""),
     "an absolute path of the machine the project was written on"),
]
# Climbing from the file's own location: `Path(__file__)...parents[K]`, `.parent` chains and
# `$(dirname "$0")/../..`. Checked against how deep the file sits in the repository.
_PARENTS = re.compile(r"__file__\)?(?:\.resolve\(\))?\.parents\[(\d+)\]")
_PARENT_CHAIN = re.compile(r"__file__\)?(?:\.resolve\(\))?((?:\.parent)+)")
_DIRNAME = re.compile(r"""dirname\s+"?\$(?:0|\{?BASH_SOURCE(?:\[0\])?\}?)"?\)((?:/\.\.)+)""")


def scanned_files() -> list[Path]:
    files = [REPO / f for f in SCANNED_FILES]
    for d in SCANNED_DIRS:
        for p in sorted((REPO / d).rglob("*")):
            if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(REPO).parts):
                files.append(p)
    return files


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# Lines that name such a path as data, not as a place the project reads: a conformance vector's
# symlink target is written into a layer verbatim and never followed.
_DATA = re.compile(r'^\s*"target":')


def violations(rel: Path, text: str) -> list[str]:
    """Every reference in `text` (the file at `rel` in the repository) to a path outside it."""
    dirs = len(rel.parts) - 1  # directories between the file and the repository root
    found = []
    for no, line in enumerate(text.splitlines(), 1):
        if rel.parts[:2] == ("spec", "vectors") and _DATA.match(line):
            continue
        for pattern, what in FORBIDDEN:
            if pattern.search(line):
                found.append(f"{rel}:{no}: {what}: {line.strip()}")
        climbs = [int(m.group(1)) + 1 for m in _PARENTS.finditer(line)]
        climbs += [m.group(1).count(".parent") for m in _PARENT_CHAIN.finditer(line)]
        climbs += [m.group(1).count("..") + 1 for m in _DIRNAME.finditer(line)]
        if any(c > dirs + 1 for c in climbs):
            found.append(f"{rel}:{no}: climbs above the repository root: {line.strip()}")
    return found


def test_no_file_refers_to_a_path_outside_the_repository() -> None:
    files = scanned_files()
    assert len(files) > 100, "the scan found too few files to mean anything"
    found: list[str] = []
    for path in files:
        if path.resolve() == THIS:
            continue
        text = text_of(path)
        if text is not None:
            found += violations(path.relative_to(REPO), text)
    assert not found, "files that reach outside the repository:\n" + "\n".join(found)


@pytest.mark.parametrize(("rel", "line"), [
    ("tests/helpers.py", 'SHARED = REPO.parent / "shared"'),
    ("tests/trust_helpers.py", 'FIX = Path(__file__).resolve().parents[1].parent / "shared"'),
    ("tests/x.py", 'FIX = Path(__file__).resolve().parents[2] / "fixtures"'),
    ("tests/x.py", "FIX = Path(__file__).parent.parent.parent / 'fixtures'"),
    ("verifier/imagelock/compress.py", "# 28 MB/s at level 6 (../shared/notes.md)"),
    ("verifier/imagelock/x.py", "# see FIELD-NOTES, section 3"),
    ("tests/x.py", 'STORE = "/work/store"'),
    ("scripts/test", 'cd "$(dirname "$0")/../.."'),
])
def test_the_scan_catches_each_way_out(rel: str, line: str) -> None:
    assert violations(Path(rel), line + "\n")


@pytest.mark.parametrize(("rel", "line"), [
    ("tests/helpers.py", "REPO = Path(__file__).resolve().parents[1]"),
    ("verifier/imagelock/schema.py", 'Path(__file__).resolve().parents[2] / "spec" / "schema"'),
    ("scripts/test", 'cd "$(dirname "$0")/.."'),
    ("tests/test_bad_input.py", '@pytest.mark.parametrize("src", ["../outside", "/etc/passwd"])'),
    ("tests/x.py", '"https://github.com/acme/app/.github/workflows/x.yml@refs/heads/main"'),
    ("tests/x.py", 'root = Path(os.environ.get("IMAGELOCK_TEST_STORE", "/tmp/store"))'),
])
def test_the_scan_lets_paths_inside_the_repository_pass(rel: str, line: str) -> None:
    assert violations(Path(rel), line + "\n") == []
