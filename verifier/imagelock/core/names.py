"""File names every command agrees on (cheap to import: the CLI loads it for every command)."""

from pathlib import Path

SPEC_FILENAME = "imagelock.yaml"
LOCK_FILENAME = "imagelock.lock"


def spec_file(path: Path | None) -> Path:
    """The spec a command means: the file given, `imagelock.yaml` in the directory given, or
    ./imagelock.yaml."""
    p = path or Path(SPEC_FILENAME)
    return p / SPEC_FILENAME if p.is_dir() else p


def lock_file(path: Path | None) -> Path:
    """The lock a command means: the file given, `imagelock.lock` in the directory given, or
    ./imagelock.lock."""
    p = path or Path(LOCK_FILENAME)
    return p / LOCK_FILENAME if p.is_dir() else p
