"""qemu-user for a foreign platform's programs (sandbox/emulation.py): what is said when it is missing."""

from __future__ import annotations

import pytest
from imagelock.core.errors import ToolUnavailable
from imagelock.sandbox import emulation


def test_without_qemu_a_foreign_platform_says_which_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulation._emulator.cache_clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    try:
        with pytest.raises(ToolUnavailable) as e:
            emulation.foreign("aarch64")
        assert "qemu-aarch64-static" in e.value.message and "qemu-user-static" in (e.value.hint or "")
        assert emulation.foreign(emulation.host_machine()) is None  # native needs nothing
    finally:
        emulation._emulator.cache_clear()
