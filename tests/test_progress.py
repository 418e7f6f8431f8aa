"""Long commands show their progress on a terminal and leave one line per phase in a log.

A person at a terminal must be able to tell working from hung: `imagelock fetch` of
python-base (52 Debian packages from the machine's mirror) is run under a pseudo-terminal and
its screen read through a VT100 emulator, as they would see it. The same command piped, as in
CI, writes one plain line per phase and no control character.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from browser import chromium, run_in_terminal, screen_html
from example_locks import FreshExample
from helpers import IMAGELOCK, copy_example, run
from imagelock.cli_display.state import Phases
from imagelock.core import progress
from imagelock.core.progress import ItemDone, PhaseEnded, PhaseStarted, Planned
from imagelock.fetch.debian import package_urls
from imagelock.inputs.fetching import sources_of
from imagelock.inputs.kind import Mirrors
from imagelock.inputs.registry import KINDS
from imagelock.formats.debian import DebianSource
from imagelock.formats.files import read_lock
from registry_fixture import Registry

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
PHASE_LINE = re.compile(r"^(resolve|fetch|layers|compare|sign|push|pull): .* in \d+(\.\d)? s"
                        r"( \([\d.]+ [kMG]?B/s\))?$")


def _mirror_host(ex: Path) -> str:
    """Where `imagelock fetch` will get the example's first package, as the display names it."""
    lock_path = ex / "imagelock.lock"
    lock = read_lock(lock_path)
    deb = lock.debian["linux/amd64"].packages[0]
    sources = {k: v for k, v in sources_of(lock_path, lock).items() if isinstance(v, DebianSource)}
    return progress.source_of(package_urls(deb, sources)[0])


def _input_count(ex: Path) -> int:
    """How many inputs `imagelock fetch` plans for the example: every kind's pinned sources
    (Debian packages, the maintainer scripts' Essential set, wheels, downloads)."""
    lock_path = ex / "imagelock.lock"
    lock = read_lock(lock_path)
    mirrors = Mirrors(sources_of(lock_path, lock), {})
    return len([src for kind in KINDS for src in kind.sources(lock, mirrors)])


@pytest.mark.slow
@pytest.mark.network
def test_fetch_on_a_terminal_shows_progress_and_ends_with_a_summary(
        tmp_path: Path, fresh_example: Callable[[str], FreshExample]) -> None:
    ex = fresh_example("python-base").checkout(tmp_path / "python-base")
    n = _input_count(ex)
    host = _mirror_host(ex)
    term = run_in_terminal([IMAGELOCK, "fetch", ex.name], cwd=tmp_path,
                           env={"IMAGELOCK_STORE": "store"})
    assert term.returncode == 0, term.output.decode(errors="replace")[-2000:]

    # While it runs: the phase, a count of the inputs, bytes, a rate, and the serving mirror.
    live = re.compile(rf"fetch +[━─]+ (\d+)/{n} inputs +[\d.]+ [kM]?B/[\d.]+ MB +[\d.]+ [kM]?B/s"
                      rf" +from {re.escape(host)} +package ")
    seen = sorted({int(m.group(1)) for screen in term.screens for line in screen
                   if (m := live.search(line))})
    assert len(seen) >= 2 and seen[0] < n, ("no live progress seen", seen)

    # When it is done: the live region is gone, the phase's line stays, then the result.
    final = [line.rstrip() for line in term.final.display if line.strip()]
    assert not any(re.match(r"^[⠀-⣿]", line) for line in final), final  # no spinner left
    assert re.fullmatch(rf"✓ fetch: {n} inputs downloaded \([\d.]+ MB, from {re.escape(host)}\) "
                        r"in [\d.]+ s \([\d.]+ [kM]?B/s\)", final[-2]), final
    assert re.fullmatch(rf"store store: 0 present, {n} downloaded \(\d+ bytes\)", final[-1]), final

    # The picture in docs/rebuild-report.md: the screen half-way, and the screen at the end.
    half = next(i for i, screen in enumerate(term.screens) for line in screen
                if (m := live.search(line)) and int(m.group(1)) >= n // 2)
    page = tmp_path / "terminal.html"
    page.write_text(screen_html([(f"$ imagelock fetch {ex.name}   (half-way)", term.screen_at(half)),
                                 ("when it is done:", term.final)],
                                replace={host: "mirror.example"}))
    chromium(page, screenshot=tmp_path / "progress-terminal.png", size=(900, 210))

    # The same command piped, as in a CI log: one plain line per phase, no control character.
    piped = run(["fetch", str(ex)], env={"IMAGELOCK_STORE": str(tmp_path / "store2")})
    assert piped.returncode == 0, piped.stderr
    assert not CONTROL.search(piped.stdout + piped.stderr.replace("\n", ""))
    lines = piped.stderr.splitlines()
    assert len(lines) == 1 and PHASE_LINE.match(lines[0]), lines
    assert lines[0].startswith(f"fetch: {n} inputs downloaded (") and f"from {host})" in lines[0]


def test_a_build_in_a_log_says_one_line_per_phase_and_quiet_says_nothing(tmp_path: Path) -> None:
    ex = copy_example("hello", tmp_path / "hello")
    env = {"IMAGELOCK_STORE": str(tmp_path / "store")}
    r = run(["build", str(ex), "-o", str(tmp_path / "a")], env=env)
    assert r.returncode == 0, r.stderr
    assert not CONTROL.search(r.stderr.replace("\n", ""))
    phases = [line.split(":")[0] for line in r.stderr.splitlines()]
    assert phases == ["fetch", "layers"], r.stderr
    assert all(PHASE_LINE.match(line) for line in r.stderr.splitlines()), r.stderr
    assert re.match(r"layers: 1 layer written \([\d.]+ kB\)", r.stderr.splitlines()[1])

    # --json: stdout is the JSON document alone; the phase lines stay on stderr.
    r = run(["build", str(ex), "-o", str(tmp_path / "b"), "--json"], env=env)
    assert json.loads(r.stdout)["verdict"] == "reproduced"
    assert [line.split(":")[0] for line in r.stderr.splitlines()] == ["fetch", "layers"]

    r = run(["build", str(ex), "-o", str(tmp_path / "c"), "--quiet"], env=env)
    assert r.returncode == 0 and r.stderr == ""

    # --verbose lists each thing as it is done, here the layer.
    r = run(["build", str(ex), "-o", str(tmp_path / "d"), "--verbose"], env=env)
    assert "layers: written layer files (linux/amd64)" in r.stderr


def test_an_error_leaves_the_phase_marked_failed_then_the_message(tmp_path: Path) -> None:
    ex = copy_example("hello", tmp_path / "hello")
    (ex / "share" / "README.txt").write_text("changed after locking\n")
    r = run(["build", str(ex), "-o", str(tmp_path / "out")],
            env={"IMAGELOCK_STORE": str(tmp_path / "store")})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert re.match(r"layers: failed after [\d.]+ s \(0 of 1 layers done\)$", lines[1]), lines
    assert "README.txt" in "\n".join(lines[2:])


def test_nobody_listens_unless_the_cli_asks() -> None:
    """Library callers pay nothing: no listener by default, and events then go nowhere."""
    assert not progress.active()
    progress.item("x", "downloaded", 1, "mirror.invalid")  # no listener: nothing happens
    heard: list[object] = []
    with progress.listening(heard.append):
        assert progress.active()
        with progress.phase("fetch"):
            progress.planned(2, 3000, "inputs")
            progress.item("a", "downloaded", 2000, "mirror.invalid")
            progress.item("b", "present", 1000)
    assert not progress.active()
    assert heard == [PhaseStarted("fetch"), Planned(2, 3000, "inputs"),
                     ItemDone("a", "downloaded", 2000, "mirror.invalid"),
                     ItemDone("b", "present", 1000), PhaseEnded("fetch", ok=True)]


def test_the_words_of_a_phase_name_counts_bytes_and_mirrors() -> None:
    phases = Phases()
    phases.feed(PhaseStarted("fetch"), 10.0)
    phases.feed(Planned(3, None, "inputs"), 10.0)
    for event in (progress.BytesMoved(1_500_000, "a", "mirror.invalid"),
                  ItemDone("a", "downloaded", 1_500_000, "mirror.invalid"),
                  ItemDone("b", "downloaded", 500_000, "other.invalid"),
                  ItemDone("c", "present", 2_000)):
        phases.feed(event, 11.0)
    ended, _ = phases.feed(PhaseEnded("fetch", ok=True), 12.0)
    assert ended is not None
    assert ended.summary() == ("fetch: 3 inputs: 2 downloaded (2.0 MB, from mirror.invalid, "
                               "other.invalid), 1 present (2.0 kB) in 2.0 s (1.0 MB/s)")
    # An escape sequence in a name never reaches the terminal or the log.
    from imagelock.cli_display.state import item_line

    assert "\x1b" not in item_line("fetch", ItemDone("evil\x1b[2J", "present"))
    assert progress.source_of("https://user:secret@mirror.invalid:8443/debian/x.deb") == \
        "mirror.invalid:8443"


def test_push_pull_and_attach_in_a_log_name_the_blobs_and_the_registry(
        tmp_path: Path, registry: Registry) -> None:
    ex = copy_example("hello", tmp_path / "hello")
    env = {"IMAGELOCK_STORE": str(tmp_path / "store"), "IMAGELOCK_KEY_PASSPHRASE": ""}
    assert run(["keygen", "-o", str(tmp_path / "k.key"), "--no-passphrase"], env=env).returncode == 0
    r = run(["build", str(ex), "-o", str(tmp_path / "img"), "--sign", str(tmp_path / "k.key")],
            env=env)
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[0] for line in r.stderr.splitlines()] == ["fetch", "layers", "sign"]

    ref = f"{registry.host}/progress/hello:1.0"
    r = run(["push", str(tmp_path / "img"), ref], env=env)
    assert r.returncode == 0, r.stderr
    # Two blobs: the layer and the config (the repository is new, so both are sent).
    assert re.fullmatch(rf"push: 2 blobs uploaded \([\d.]+ k?B, to {re.escape(registry.host)}\) "
                        r"in [\d.]+ s \([\d.]+ k?B/s\)\n", r.stderr), r.stderr
    digest = r.stdout.split("manifest ")[1].strip()

    r = run(["pull", ref, "-o", str(tmp_path / "pulled"), "--verbose"], env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert any(re.fullmatch(rf"pull: downloaded layer 0 \(sha256:\w+\) \([\d.]+ k?B\) from "
                            rf"{re.escape(registry.host)}", line) for line in lines), lines
    assert re.fullmatch(rf"pull: 2 blobs downloaded \([\d.]+ kB, from {re.escape(registry.host)}\)"
                        r" in .*", lines[-1]), lines

    r = run(["attach", f"{registry.host}/progress/hello@{digest}",
             str(tmp_path / "img.intoto.jsonl")], env=env)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"push: 1 uploaded \([\d.]+ k?B\) in .*\n", r.stderr), r.stderr
