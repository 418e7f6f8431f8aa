"""Shared fixtures. One store of downloaded inputs is shared by the whole run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO  # noqa: F401  (re-exported for tests)

pytest_plugins = ["conftest_debian", "registry_fixture", "oci_helpers", "example_locks"]

# Fixtures that start one of the real tools (docker-registry, skopeo): every test that uses one
# needs that tool, so it gets the `tools` marker here rather than by hand in each test.
TOOL_FIXTURES = {"registry", "skopeo_hello_archive"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TOOL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.tools)


@pytest.fixture(scope="session")
def shared_store() -> Path:
    """The store shared by all tests that only read pinned inputs (IMAGELOCK_TEST_STORE)."""
    root = Path(os.environ.get("IMAGELOCK_TEST_STORE", "/tmp/imagelock-test-store"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def store_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a subprocess with a private, empty store."""
    yield {"IMAGELOCK_STORE": str(tmp_path / "store"), "IMAGELOCK_HTTP_BACKOFF": "0.05"}
