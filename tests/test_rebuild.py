"""`imagelock rebuild` as a rebuilder runs it: against tampered images (verdict, class, path,
exit code), recompressed images, without a sandbox, and with the sandbox missing."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from browser import chromium, read_dom
import pytest
from helpers import REPO, copy_example, run
from imagelock.oci.layout import write_layout
from imagelock.oci.layout_read import read_layout
from tamper import add_file, change_byte, chmod, edit_config, edit_layer, recompress


def _setup(tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    ex = copy_example("hello", tmp / "hello")
    env = {"IMAGELOCK_STORE": str(tmp / "store")}
    r = run(["build", str(ex), "-o", str(tmp / "published")], env=env)
    assert r.returncode == 0, r.stderr
    return ex, tmp / "published", env


def _rebuild(ex: Path, image: Path, env: dict[str, str], *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = run(["rebuild", str(ex), "--image", f"oci:{image}", "--json", *extra], env=env)
    assert "Traceback" not in r.stderr
    return r.returncode, json.loads(r.stdout)


@pytest.mark.tools  # the rebuild runs in bubblewrap
def test_untouched_image_is_reproduced_in_the_sandbox(tmp_path: Path) -> None:
    ex, published, env = _setup(tmp_path)
    code, rep = _rebuild(ex, published, env)
    assert (code, rep["verdict"], rep["sandbox"]) == (0, "reproduced", "bubblewrap")


def _page(path: Path) -> tuple[str, str]:
    """The report page as Chromium renders it: its title and visible text."""
    page = read_dom(chromium(path, dump_dom=True))
    assert "script" not in page.tags and "img" not in page.tags, page.tags
    return page.title, page.text


@pytest.mark.tools  # the rebuild runs in bubblewrap
def test_one_changed_byte_is_a_mismatch_naming_the_file(tmp_path: Path) -> None:
    ex, published, env = _setup(tmp_path)
    img = edit_layer(read_layout(published), 0, tmp_path / "w", change_byte("usr/local/bin/hello", 100))
    write_layout([img], tmp_path / "tampered")
    code, rep = _rebuild(ex, tmp_path / "tampered", env, "--report-html", str(tmp_path / "r.html"))
    assert code == 1 and rep["verdict"] == "mismatch"
    real = [d for d in rep["differences"] if not d["derived"]]
    assert [(d["category"], d["path"]) for d in real] == [("content", "/usr/local/bin/hello")]
    human = run(["rebuild", str(ex), "--image", f"oci:{tmp_path / 'tampered'}"], env=env)
    assert human.returncode == 1 and "usr/local/bin/hello" in human.stdout
    title, text = _page(tmp_path / "r.html")
    assert title.startswith("imagelock rebuild: MISMATCH")
    assert "MISMATCH the published image differs from the rebuild" in text
    assert "Layer 0 (files) content (1) path field change expected got /usr/local/bin/hello " \
        "content changed 8512 bytes" in text
    assert "no inline diff: not UTF-8 text" in text  # a binary gets no text diff


@pytest.mark.tools  # the rebuild runs in bubblewrap
def test_mode_and_config_changes_are_classified(tmp_path: Path) -> None:
    ex, published, env = _setup(tmp_path)
    img = edit_layer(read_layout(published), 0, tmp_path / "w1", chmod("etc/passwd", 0o666))
    img = edit_config(img, tmp_path / "w2", lambda c: c["config"]["Env"].append("EVIL=1"))
    write_layout([img], tmp_path / "tampered")
    code, rep = _rebuild(ex, tmp_path / "tampered", env, "--report-html", str(tmp_path / "r.html"))
    assert code == 1
    cats = {(d["category"], d["path"] or d["field"]) for d in rep["differences"] if not d["derived"]}
    assert ("permissions", "/etc/passwd") in cats
    assert any(c == "metadata" and "Env" in str(f) for c, f in cats)
    _, text = _page(tmp_path / "r.html")
    # Summary first, then the documents, then the layer, each grouped by class.
    assert text.index("Summary") < text.index("Identities") < text.index("Image documents") \
        < text.index("Layer 0 (files)")
    assert re.search(r"Image documents \(index, manifest, config\) metadata \(1\) field change "
                     r"expected got config\.Env added EVIL=1 \d derived differences \(they "
                     r"follow from the others\) class field .* config\.digest changed ", text)
    assert "permissions (1) path field change expected got /etc/passwd mode changed 0644 0666" in text


def test_report_page_shows_hostile_names_as_text_and_diffs_small_text_files(
        tmp_path: Path) -> None:
    """The page is built from the published image, which anyone could have made: a file
    named like markup is shown as text and runs nothing; a changed text file is shown as a
    diff; the same comparison writes the same bytes."""
    ex, published, env = _setup(tmp_path)
    script = "usr/share/<script>document.title='PWNED'</script>"  # a directory, then `script>`
    img = edit_layer(read_layout(published), 0, tmp_path / "w", change_byte("etc/os-release", 10),
                     add_file(script, b"x\n"),
                     add_file("usr/share/<img src=x onerror=\"document.title='PWNED'\">", b"y\n"))
    write_layout([img], tmp_path / "tampered")
    code, _ = _rebuild(ex, tmp_path / "tampered", env, "--report-html", str(tmp_path / "r.html"),
                       "--diffoscope", str(tmp_path / "diffoscope"))
    assert code == 1
    title, text = _page(tmp_path / "r.html")
    assert title == "imagelock rebuild: MISMATCH: imagelock/hello:1.0 (linux/amd64)"  # no script ran
    assert f"/{script} entry added" in text
    assert "/usr/share/<img src=x onerror=\"document.title='PWNED'\"> entry added" in text
    assert "&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt;" in \
        (tmp_path / "r.html").read_text()
    # The inline diff: NAME="imagelock hello" had one bit flipped (l -> m) by the tamper.
    assert '--- rebuilt +++ published @@ -1,4 +1,4 @@ -NAME="imagelock hello" ' \
        '+NAME="imagdlock hello"' in text
    # diffoscope ran on the changed file; the page links to its output, relative to the page.
    assert "diffoscope/diffoscope/layer-0/etc/os-release.txt" in \
        (tmp_path / "r.html").read_text()
    chromium(tmp_path / "r.html", screenshot=tmp_path / "rebuild-report.png", size=(1000, 1150))

    first = (tmp_path / "r.html").read_bytes()
    shutil.rmtree(tmp_path / "diffoscope")
    code, _ = _rebuild(ex, tmp_path / "tampered", env, "--report-html", str(tmp_path / "r.html"),
                       "--diffoscope", str(tmp_path / "diffoscope"))
    assert code == 1
    assert (tmp_path / "r.html").read_bytes() == first


@pytest.mark.tools  # the rebuild runs in bubblewrap
def test_recompressed_image_is_reproduced_content_with_exit_0(tmp_path: Path) -> None:
    ex, published, env = _setup(tmp_path)
    write_layout([recompress(read_layout(published), tmp_path / "w", level=9)], tmp_path / "re")
    code, rep = _rebuild(ex, tmp_path / "re", env)
    assert (code, rep["verdict"]) == (0, "reproduced-content")


def test_a_vendor_s_other_encoder_version_is_named_and_explains_reproduced_content(
        tmp_path: Path) -> None:
    """The vendor built with another python-isal: its blobs differ from ours for the same
    layers. The rebuilder's report names both encoders, before anyone has to guess."""
    ex, published, env = _setup(tmp_path)
    vendor = recompress(read_layout(published), tmp_path / "w", level=9)  # its encoder's blobs
    write_layout([vendor], tmp_path / "vendor")
    lock_path = ex / "imagelock.lock"
    lock = json.loads(lock_path.read_text())
    ours = lock["compression"]["implementation"]
    assert ours.startswith("python-isal ")
    lock["compression"]["implementation"] = "python-isal 1.6.1"  # what the vendor's lock records
    plat = lock["expected"]["linux/amd64"]
    plat["manifest_digest"] = vendor.manifest_digest
    for layer, blob in zip(plat["layers"], vendor.layers, strict=True):
        layer["digest"], layer["size"] = blob.digest, blob.size
    lock_path.write_text(json.dumps(lock, indent=2) + "\n")

    code, rep = _rebuild(ex, tmp_path / "vendor", env)
    assert (code, rep["verdict"]) == (0, "reproduced-content")
    assert rep["toolchain"] == [{"what": "gzip encoder", "here": ours, "lock": "python-isal 1.6.1",
                                 "expect": "reproduced-content"}]
    named = [n for n in rep["rebuild_notes"] if "gzip encoder" in n]
    assert named == [f"this machine's gzip encoder is {ours}, the lock's is python-isal 1.6.1: "
                     "expect reproduced-content (the same content, other compressed blobs, so "
                     "another manifest digest), not reproduced"]
    human = run(["rebuild", str(ex), "--image", f"oci:{tmp_path / 'vendor'}"], env=env)
    assert human.returncode == 0 and "python-isal 1.6.1" in human.stdout
    # The same machine's encoder as the lock's: nothing to say.
    code, rep = _rebuild(copy_example("hello", tmp_path / "again"), published, env)
    assert (code, rep["verdict"], rep["toolchain"]) == (0, "reproduced", [])
    assert not any("encoder" in n for n in rep["rebuild_notes"])


def test_another_imagelock_version_is_named_only_when_the_rebuild_differs(
        tmp_path: Path) -> None:
    ex, published, env = _setup(tmp_path)
    lock_path = ex / "imagelock.lock"
    lock = json.loads(lock_path.read_text())
    lock["tool"]["version"] = "0.0.1"
    lock_path.write_text(json.dumps(lock, indent=2) + "\n")
    code, rep = _rebuild(ex, published, env)
    assert (code, rep["verdict"]) == (0, "reproduced")
    assert [d["what"] for d in rep["toolchain"]] == ["imagelock"]
    assert not any("imagelock 0.0.1" in n for n in rep["rebuild_notes"])  # it did not matter
    img = edit_layer(read_layout(published), 0, tmp_path / "w", change_byte("usr/local/bin/hello", 100))
    write_layout([img], tmp_path / "tampered")
    code, rep = _rebuild(ex, tmp_path / "tampered", env)
    assert (code, rep["verdict"]) == (1, "mismatch")
    assert any("the lock was made by imagelock 0.0.1" in n for n in rep["rebuild_notes"])


def test_no_sandbox_is_said_and_a_missing_sandbox_is_exit_4(tmp_path: Path) -> None:
    ex, published, env = _setup(tmp_path)
    code, rep = _rebuild(ex, published, env, "--no-sandbox")
    assert code == 0 and rep["sandbox"] == "none (--no-sandbox)"
    # Without bwrap on PATH the rebuild refuses instead of silently running unisolated.
    r = run(["rebuild", str(ex), "--image", f"oci:{published}"], env={**env, "PATH": "/nonexistent"})
    assert r.returncode == 4, r.stderr
    assert "bubblewrap" in r.stderr and "--no-sandbox" in r.stderr


@pytest.mark.tools  # the rebuild runs in bubblewrap
def test_rebuild_signs_a_vsa_only_on_a_match(tmp_path: Path) -> None:
    ex, published, env = _setup(tmp_path)
    r = run(["keygen", "-o", str(tmp_path / "rb.key"), "--no-passphrase"], env=env)
    assert r.returncode == 0, r.stderr
    code, rep = _rebuild(ex, published, env, "--sign", str(tmp_path / "rb.key"))
    assert code == 0 and Path(rep["attestation"]) == tmp_path / "published.intoto.jsonl"
    assert len((tmp_path / "published.intoto.jsonl").read_text().splitlines()) == 1
    img = edit_layer(read_layout(published), 0, tmp_path / "w", change_byte("etc/group"))
    write_layout([img], tmp_path / "bad")
    code, rep = _rebuild(ex, tmp_path / "bad", env, "--sign", str(tmp_path / "rb.key"))
    assert code == 1 and rep["attestation"] is None and not (tmp_path / "bad.intoto.jsonl").exists()
    code, rep = _rebuild(ex, tmp_path / "bad", env, "--sign", str(tmp_path / "rb.key"), "--sign-failures")
    assert code == 1 and (tmp_path / "bad.intoto.jsonl").is_file()
    os.remove(tmp_path / "bad.intoto.jsonl")
    assert REPO.is_dir()


def test_signing_needs_the_sandbox_and_a_registry_for_push(tmp_path: Path) -> None:
    ex, published, env = _setup(tmp_path)
    assert run(["keygen", "-o", str(tmp_path / "k"), "--no-passphrase"], env=env).returncode == 0
    r = run(["rebuild", str(ex), "--image", f"oci:{published}", "--no-sandbox", "--sign",
             str(tmp_path / "k")], env=env)
    assert r.returncode == 2 and "isolated rebuild" in r.stderr
    r = run(["rebuild", str(ex), "--image", f"oci:{published}", "--sign", str(tmp_path / "k"),
             "--push-attestation"], env=env)
    assert r.returncode == 2 and "registry image" in r.stderr
    assert not (tmp_path / "published.intoto.jsonl").exists()


def test_provenance_beside_a_docker_archive_verifies(tmp_path: Path) -> None:
    ex, _, env = _setup(tmp_path)
    assert run(["keygen", "-o", str(tmp_path / "v"), "--no-passphrase"], env=env).returncode == 0
    r = run(["build", str(ex), "-o", str(tmp_path / "img.tar"), "--format", "docker-archive",
             "--sign", str(tmp_path / "v")], env=env)
    assert r.returncode == 0, r.stderr
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nvendors:\n  - {name: v, key: v.pub}\nrebuilders:\n  threshold: 0\n"
        "  trusted: []\n")
    r = run(["verify", str(tmp_path / "img.tar"), "--policy", str(tmp_path / "policy.yaml"),
             "--json"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_keygen_into_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    r = run(["keygen", "-o", str(tmp_path / "nope" / "key"), "--no-passphrase"])
    assert r.returncode == 2 and "does not exist" in r.stderr


def _token() -> str:
    import time

    import jwt

    now = int(time.time())
    return jwt.encode({"iss": "https://token.actions.githubusercontent.com", "sub": "repo:x/y",
                       "aud": "sigstore", "iat": now, "exp": now + 600, "email": "a@example.com"},
                      "not-a-real-key", algorithm="HS256")


def test_keyless_signing_is_tested_up_to_the_network_boundary(tmp_path: Path) -> None:
    """sigstore's services are unreachable from here: a well-formed token gets as far as Fulcio
    and fails with exit 3; a malformed one is bad input, exit 2. Nothing half-written remains."""
    from helpers import SIGSTORE_FIXTURES

    ex, _, env = _setup(tmp_path)
    trust = SIGSTORE_FIXTURES / "sigstore-python/trust"
    common = ["--sigstore", "--trusted-root", str(trust / "production.trusted_root.json"),
              "--signing-config", str(trust / "production.signing_config.v0.2.json")]
    env = {**env, "IMAGELOCK_HTTP_TIMEOUT": "3"}
    r = run(["build", str(ex), "-o", str(tmp_path / "a"), *common, "--identity-token", "nonsense"],
            env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    r = run(["build", str(ex), "-o", str(tmp_path / "b"), *common, "--identity-token", _token()],
            env=env, timeout=120)
    assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
    assert list(tmp_path.glob("b.*.sigstore.json")) == []
    r = run(["build", str(ex), "-o", str(tmp_path / "c"), "--sigstore", "--sign", "k"], env=env)
    assert r.returncode == 2 and "not both" in r.stderr
