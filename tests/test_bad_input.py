"""Bad input gets a clear error naming the file, the field and what to do, with a distinct exit
code; never a traceback, never a partial output."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import pytest
from helpers import file_server, run

HEAD = 'version: 1\nimage:\n  name: t\n'


def project(tmp: Path, spec: str, files: dict[str, bytes] | None = None) -> Path:
    d = tmp / "proj"
    d.mkdir(exist_ok=True)
    (d / "imagelock.yaml").write_text(textwrap.dedent(spec))
    for name, data in (files or {}).items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return d


def assert_clean_error(r: object, code: int, *needles: str) -> str:
    out = r.stderr  # type: ignore[attr-defined]
    assert r.returncode == code, (r.returncode, r.stdout, out)  # type: ignore[attr-defined]
    assert "Traceback" not in out and "internal error" not in out, out
    for n in needles:
        assert n in out, (n, out)
    return out  # type: ignore[no-any-return]


def test_malformed_yaml_names_file_and_line(tmp_path: Path, store_env: dict[str, str]) -> None:
    d = project(tmp_path, HEAD + "contents:\n  files:\n    - src: a\n     dest: /a\n")
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "imagelock.yaml:", "malformed YAML")


def test_duplicate_keys_are_refused(tmp_path: Path, store_env: dict[str, str]) -> None:
    d = project(tmp_path, HEAD + "  name: u\n")
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "imagelock.yaml:4", "duplicate key 'name'")


def test_unknown_key_names_field_and_line(tmp_path: Path, store_env: dict[str, str]) -> None:
    d = project(tmp_path, HEAD + "config:\n  entrypoint: [/x]\n  entrypiont: [/y]\n")
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "imagelock.yaml:6: config.entrypiont: unknown key")


def test_wrong_type_names_file_line_and_field(tmp_path: Path, store_env: dict[str, str]) -> None:
    d = project(tmp_path, HEAD + "contents:\n  files:\n    - src: a\n      dest: /a\n      mode: 0755\n",
                {"a": b"x"})
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "imagelock.yaml:8: contents.files[0].mode:", 'quoted octal string')
    d = project(tmp_path, HEAD + "config:\n  cmd: /bin/sh\n")
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "imagelock.yaml:5: config.cmd:")


def test_missing_context_file(tmp_path: Path, store_env: dict[str, str]) -> None:
    d = project(tmp_path, HEAD + "contents:\n  files:\n    - {src: nothere, dest: /x}\n")
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "contents.files[0].src", "does not exist")


@pytest.mark.parametrize("src", ["../outside", "/etc/passwd", "sub/../../outside"])
def test_context_path_escaping_the_context_is_refused(
    src: str, tmp_path: Path, store_env: dict[str, str]
) -> None:
    (tmp_path / "outside").write_text("secret")
    d = project(tmp_path, HEAD + f"contents:\n  files:\n    - {{src: '{src}', dest: /x}}\n")
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "contents.files[0].src", "outside the build context")


def test_symlink_pointing_out_of_the_context_is_refused(tmp_path: Path, store_env: dict[str, str]) -> None:
    (tmp_path / "secret").write_text("secret")
    d = project(tmp_path, HEAD + "contents:\n  files:\n    - {src: link, dest: /x}\n"
                "    - {src: dir, dest: /d}\n", {"dir/ok": b"ok"})
    os.symlink(tmp_path / "secret", d / "link")
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "outside the build context")
    # A link inside a copied directory that points out is refused as well.
    (tmp_path / "2").mkdir()
    d2 = project(tmp_path / "2", HEAD + "contents:\n  files:\n    - {src: dir, dest: /d}\n",
                 {"dir/ok": b"ok"})
    os.symlink("../../secret", d2 / "dir" / "escape")
    r = run(["lock", str(d2)], env=store_env)
    assert_clean_error(r, 2, "symlink 'dir/escape'", "points outside the build context")


@pytest.mark.parametrize("dest", ["/../etc/x", "/usr/../../x"])
def test_destination_escaping_the_image_root_is_refused(
    dest: str, tmp_path: Path, store_env: dict[str, str]
) -> None:
    d = project(tmp_path, HEAD + f"contents:\n  files:\n    - {{src: a, dest: '{dest}'}}\n", {"a": b"x"})
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "'..'", "escape the image root")


def test_symlink_escaping_the_image_root_is_refused(tmp_path: Path, store_env: dict[str, str]) -> None:
    d = project(tmp_path, HEAD + "paths:\n  - {path: /a/l, type: symlink, target: ../../../etc}\n")
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "points outside the image root")


def test_two_inputs_at_the_same_destination(tmp_path: Path, store_env: dict[str, str]) -> None:
    d = project(tmp_path, HEAD + "contents:\n  files:\n    - {src: a, dest: /x}\n    - {src: b, dest: /x}\n",
                {"a": b"1", "b": b"2"})
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "same destination /x", "files[0] (a)", "files[1] (b)")


def _download_project(tmp: Path, url: str, sha: str | None) -> Path:
    pin = f", sha256: {sha}" if sha else ""
    return project(tmp, HEAD + f"contents:\n  downloads:\n    - {{url: '{url}', dest: /blob{pin}}}\n")


def test_download_whose_sha256_differs_is_discarded_with_exit_3(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "blob").write_bytes(b"the real bytes" * 1000)
    wrong = hashlib.sha256(b"what was reviewed").hexdigest()
    with file_server(served) as (base, _srv):
        d = _download_project(tmp_path, f"{base}/files/blob", wrong)
        r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 3, "pinned sha256 " + wrong, "discarded")
    store = Path(store_env["IMAGELOCK_STORE"])
    assert not any((store / "sha256").iterdir()) if (store / "sha256").exists() else True
    assert not any((store / "tmp").iterdir()) if (store / "tmp").exists() else True
    assert not (d / "imagelock.lock").exists()


def test_truncated_download_is_retried_then_fails_clearly(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "blob").write_bytes(os.urandom(200_000))
    with file_server(served) as (base, srv):
        d = _download_project(tmp_path, f"{base}/truncate/blob", None)
        r = run(["lock", str(d)], env=store_env)
        assert_clean_error(r, 3, "could not fetch download", "attempt 3")
        assert srv.hits.count("/truncate/blob") == 3
        # A transfer that breaks once succeeds on the retry.
        d = _download_project(tmp_path, f"{base}/flaky/blob", None)
        r = run(["lock", str(d)], env=store_env)
        assert r.returncode == 0, r.stderr
        assert srv.hits.count("/flaky/blob") == 2


def test_stalled_download_times_out_and_fails_clearly(tmp_path: Path, store_env: dict[str, str]) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "blob").write_bytes(b"x" * 100_000)
    with file_server(served) as (base, srv):
        srv.stall_seconds = 3
        d = _download_project(tmp_path, f"{base}/stall/blob", None)
        r = run(["lock", str(d)], env={**store_env, "IMAGELOCK_HTTP_TIMEOUT": "0.5"})
    assert_clean_error(r, 3, "could not fetch download", "timed out")
    assert srv.hits.count("/stall/blob") == 3


def _locked_project(tmp: Path, env: dict[str, str]) -> Path:
    d = project(tmp, HEAD + "contents:\n  files:\n    - {src: app, dest: /app}\n",
                {"app/main.txt": b"v1", "app/other.txt": b"o"})
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    return d


def test_stale_lock_after_spec_change_says_what_changed(tmp_path: Path, store_env: dict[str, str]) -> None:
    d = _locked_project(tmp_path, store_env)
    spec = d / "imagelock.yaml"
    spec.write_text(spec.read_text() + "config:\n  cmd: [/app/main]\n")
    r = run(["build", str(d), "-o", str(tmp_path / "out")], env=store_env)
    assert_clean_error(r, 2, "stale", "changed: config", "imagelock lock")
    assert not (tmp_path / "out").exists()
    # Formatting and comments never make a lock stale.
    (tmp_path / "b").mkdir()
    d2 = _locked_project(tmp_path / "b", store_env)
    spec2 = d2 / "imagelock.yaml"
    spec2.write_text("# a comment\n" + spec2.read_text().replace("name: t", "name:    't'"))
    r = run(["build", str(d2), "-o", str(tmp_path / "out2")], env=store_env)
    assert r.returncode == 0, r.stderr


def test_stale_lock_after_context_change(tmp_path: Path, store_env: dict[str, str]) -> None:
    d = _locked_project(tmp_path, store_env)
    (d / "app/main.txt").write_bytes(b"v2")
    out = tmp_path / "out"
    r = run(["build", str(d), "-o", str(out)], env=store_env)
    assert_clean_error(r, 2, "context file 'app/main.txt' changed since the lock was made",
                       "imagelock lock")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    (d / "app/main.txt").write_bytes(b"v1")
    (d / "app/new.txt").write_bytes(b"n")
    r = run(["build", str(d), "-o", str(out)], env=store_env)
    assert_clean_error(r, 2, "new in the context: app/new.txt")
    assert not out.exists()


def test_existing_unrelated_output_directory_is_not_clobbered(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    d = _locked_project(tmp_path, store_env)
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = run(["build", str(d), "-o", str(out)], env=store_env)
    assert_clean_error(r, 2, "exists and is not an earlier output")
    assert (out / "notes.txt").read_text() == "mine"


def test_offline_build_with_an_empty_store_fails_with_exit_3(tmp_path: Path, store_env: dict[str, str]) -> None:
    served = tmp_path / "srv"
    served.mkdir()
    (served / "blob").write_bytes(b"payload")
    with file_server(served) as (base, _):
        d = _download_project(tmp_path, f"{base}/files/blob", None)
        assert run(["lock", str(d)], env=store_env).returncode == 0
    other = {**store_env, "IMAGELOCK_STORE": str(tmp_path / "empty-store")}
    r = run(["build", str(d), "-o", str(tmp_path / "o"), "--offline"], env=other)
    assert_clean_error(r, 3, "not in the store", "--offline")
    assert not (tmp_path / "o").exists()


# --- issue 12: hostile values are bad input (exit 2), never a crash or a silent coercion -------


def _hello_lock(tmp: Path, edit: str) -> Path:
    """The hello example with its lock's text edited (the lock is JSON, edited as text so that
    duplicate keys and huge numbers survive)."""
    from helpers import copy_example

    ex = copy_example("hello", tmp / "hello")
    text = (ex / "imagelock.lock").read_text()
    (ex / "imagelock.lock").write_text(edit.replace("{lock}", text[1:]))
    return ex


def test_a_lock_with_a_duplicate_key_is_refused(tmp_path: Path, store_env: dict[str, str]) -> None:
    # Last one wins in Python's json: this lock would otherwise be read with epoch 0.
    ex = _hello_lock(tmp_path, '{"source_date_epoch": 0, {lock}')
    r = run(["build", str(ex), "-o", str(tmp_path / "out")], env=store_env)
    assert_clean_error(r, 2, "'source_date_epoch' appears twice")
    assert not (tmp_path / "out").exists()


def test_a_duplicate_key_in_a_spec_or_policy_is_refused(tmp_path: Path, store_env: dict[str, str]) -> None:
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nrebuilders: {threshold: 0}\nrebuilders: {threshold: 0}\n")
    r = run(["verify", str(tmp_path), "--policy", str(tmp_path / "policy.yaml")], env=store_env)
    assert_clean_error(r, 2, "policy.yaml:3", "duplicate key 'rebuilders'")


@pytest.mark.parametrize(("value", "needle"), [
    ("true", "valid integer"),
    ('"1"', "valid integer"),
])
def test_policy_numbers_are_not_coerced(value: str, needle: str, tmp_path: Path,
                                        store_env: dict[str, str]) -> None:
    (tmp_path / "k.pub").write_bytes(b"")
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nrequired_predicate_types: []\n"
        f"rebuilders: {{threshold: {value}, trusted: [{{name: a, key: k.pub}}]}}\n")
    r = run(["verify", str(tmp_path), "--policy", str(tmp_path / "policy.yaml")], env=store_env)
    assert_clean_error(r, 2, "rebuilders.threshold", needle)


def test_lock_numbers_are_not_coerced(tmp_path: Path, store_env: dict[str, str]) -> None:
    ex = _hello_lock(tmp_path, '{"source_date_epoch": "1767225600", {lock}')
    text = (ex / "imagelock.lock").read_text()
    # Keep only the string epoch: drop the lock's own (numeric) one.
    text = text.replace('  "source_date_epoch": 1767225600,\n', "")
    (ex / "imagelock.lock").write_text(text)
    r = run(["build", str(ex), "-o", str(tmp_path / "out")], env=store_env)
    assert_clean_error(r, 2, "source_date_epoch", "valid integer")


@pytest.mark.parametrize(("files_entry", "needle"), [
    ('{src: a, dest: /a, owner: "0:4294967296"}', "at most 2147483647"),
    ('{src: a, dest: /' + "x" * 256 + "}", "at most 255"),
    ('{src: a, dest: /' + "/".join(["x" * 200] * 21) + "}", "at most 4095"),
])
def test_owners_and_paths_stay_within_what_linux_unpacks(
    files_entry: str, needle: str, tmp_path: Path, store_env: dict[str, str]
) -> None:
    d = project(tmp_path, HEAD + f"contents:\n  files:\n    - {files_entry}\n", {"a": b"x"})
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2, "contents.files[0]", needle)


def test_the_tar_writer_refuses_ids_and_names_linux_cannot_unpack() -> None:
    from imagelock.core.errors import UnsafeContentError
    from imagelock.tar.writer import entry_header

    ok = {"path": "a", "type": "file", "mode": 0o644, "uid": 2**31 - 1, "gid": 0, "size": 0,
          "mtime": 0}
    assert len(entry_header(**ok)) >= 512  # type: ignore[arg-type]
    for bad in ({"uid": 2**31}, {"gid": 2**40}, {"path": "d/" + "x" * 256},
                {"type": "symlink", "linkname": "y" * 4096}):
        with pytest.raises(UnsafeContentError):
            entry_header(**{**ok, **bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [
    HEAD + "source_date_epoch: 99999999999999\n",      # accepted by the spec, refused by the lock
    HEAD + "source_date_epoch: " + "9" * 5000 + "\n",  # over Python's 4,300-digit limit
    HEAD + "config:\n  labels: " + "[" * 2000 + "]" * 2000 + "\n",  # RecursionError in PyYAML
])
def test_hostile_specs_are_bad_input_not_a_crash(text: str, tmp_path: Path,
                                                 store_env: dict[str, str]) -> None:
    d = project(tmp_path, text)
    r = run(["lock", str(d)], env=store_env)
    assert_clean_error(r, 2)
    assert len(r.stderr) < 4000


def test_an_epoch_from_the_environment_beyond_tar_is_bad_input(tmp_path: Path,
                                                                store_env: dict[str, str]) -> None:
    d = project(tmp_path, HEAD)
    r = run(["lock", str(d)], env={**store_env, "SOURCE_DATE_EPOCH": "99999999999999"})
    assert_clean_error(r, 2, "SOURCE_DATE_EPOCH")


@pytest.mark.parametrize(("text", "needle"), [
    ('{"lock_version": ' + "1" * 5000 + "}", "digits"),
    ("[" * 100_000 + "]" * 100_000, "arrays and objects"),
    ('{"lock_version": 1, "x": NaN}', "NaN is not JSON"),
])
def test_hostile_locks_are_bad_input_in_diff_too(text: str, needle: str, tmp_path: Path) -> None:
    from helpers import REPO

    (tmp_path / "bad.lock").write_text(text)
    r = run(["diff", str(REPO / "examples/hello/imagelock.lock"), str(tmp_path / "bad.lock")])
    assert_clean_error(r, 2, "bad.lock", needle)


def test_max_age_beyond_any_clock_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_bytes(b"")
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nrequired_predicate_types: []\nmax_age: 99999999999w\n"
        "rebuilders: {threshold: 1, trusted: [{name: a, key: k.pub}]}\n")
    r = run(["verify", str(tmp_path), "--policy", str(tmp_path / "policy.yaml")])
    assert_clean_error(r, 2, "max_age", "100 years")


def test_an_alias_bomb_in_a_spec_is_refused_quickly(tmp_path: Path, store_env: dict[str, str]) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    # Where it is validated: a list of a billion strings once expanded.
    d = project(tmp_path, HEAD + "\n".join(lines) + "\nconfig:\n  cmd: *a8\n")
    r = run(["lock", str(d)], env=store_env, timeout=30)
    assert_clean_error(r, 2, "YAML aliases expand this document")
    # The message names the problem; it never expands (or quotes) the aliased value.
    assert "x, x" not in r.stderr and "'x'" not in r.stderr and len(r.stderr) < 2000
