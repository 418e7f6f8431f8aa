"""File names every command agrees on (a module of constants, cheap to import)."""

SPEC_FILENAME = "imagelock.yaml"
LOCK_FILENAME = "imagelock.lock"
