"""Build time of examples/python-base next to mmdebstrap producing a root file system with the
same package set, in the same run (one run each, ratio printed). Both read .debs from local
disk and nothing from the network while timed: imagelock from its store, mmdebstrap from a flat
`[trusted=yes]` file repository made (dpkg-scanpackages) from the very same .deb files, plus the
Essential packages its `essential` variant needs beyond them, downloaded beforehand by an
untimed mmdebstrap run. mmdebstrap's own `apt-get update` then reads that local repository.

Run: ./bench/run debian   (installs mmdebstrap and dpkg-dev with apt-get when missing)
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imagelock.fetch.apt_sources import machine_mirrors

REPO = Path(__file__).resolve().parents[1]
IMAGELOCK = str(Path(sys.executable).parent / "imagelock")


AUTOMOUNT = "/usr/share/mmdebstrap/hooks/file-mirror-automount"
TOOLS = {"mmdebstrap": "mmdebstrap", "dpkg-dev": "dpkg-scanpackages"}  # package: program


def _apt_install() -> None:
    """Install what the comparison needs (apt-get update first if the lists are stale)."""
    missing = [pkg for pkg, tool in TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def local_repository(work: Path, store: Path, pins: list[dict[str, str]],
                     essential_from: list[str] | None) -> Path:
    """A flat file repository: the lock's .debs (the files imagelock builds from), plus, with
    `essential_from` (apt source lines), the packages mmdebstrap's essential variant needs
    beyond them (Essential: yes and their dependencies), taken from an untimed mmdebstrap run
    against those sources."""
    repo = work / "repo"
    repo.mkdir()
    for p in pins:
        shutil.copy(store / "sha256" / p["sha256"], repo / p["location"].rsplit("/", 1)[1])
    names = [p["name"] for p in pins]
    extra = 0
    if essential_from is not None:
        prep = work / "prep"
        subprocess.run(["mmdebstrap", "--variant=essential", "--mode=root", "--format=directory",
                        "--quiet", "--skip=essential/unlink,cleanup/apt/cache",
                        "--include=" + ",".join(names), "bookworm", str(prep), *essential_from],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pinned = set(names)
        for deb in sorted((prep / "var/cache/apt/archives").glob("*.deb")):
            if deb.name.split("_", 1)[0] not in pinned:
                shutil.copy(deb, repo / deb.name)
                extra += 1
        shutil.rmtree(prep, ignore_errors=True)
    index = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, check=True,
                           capture_output=True).stdout
    (repo / "Packages").write_bytes(index)
    digest = hashlib.sha256(index).hexdigest()
    # Suite and Codename: mmdebstrap picks the Essential set from the suite it is given.
    (repo / "Release").write_text(
        "Suite: bookworm\nCodename: bookworm\nArchitectures: amd64 all\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\nSHA256:\n {digest} {len(index)} Packages\n")
    print(f"local repository: {len(pins)} .debs of the lock + {extra} more for the essential "
          f"variant ({repo})", file=sys.stderr)
    return repo


def mmdebstrap_command(variant: str, include: list[str], repo: Path, out: Path) -> list[str]:
    """The timed mmdebstrap run: `repo` (a local file repository) is its only source."""
    args = ["mmdebstrap", f"--variant={variant}", "--mode=root", "--format=tar", "--quiet",
            # Bind-mounts the file repository into the chroot (read in place, not copied).
            f"--hook-dir={AUTOMOUNT}", "--include=" + ",".join(include), "bookworm", str(out),
            f"deb [trusted=yes] file://{repo} ./"]
    if variant == "extract":  # mmdebstrap 1.3 runs no customize hook (the unmount) there
        args.insert(1, f"--extract-hook={AUTOMOUNT}/customize00.sh \"$1\"")
    return args


def main() -> None:
    _apt_install()
    lock = json.loads((REPO / "examples/python-base/imagelock.lock").read_text())
    pins = lock["debian"]["linux/amd64"]["packages"]
    work = Path(tempfile.mkdtemp(prefix="imagelock-bench-deb-"))
    env = {**os.environ, "IMAGELOCK_STORE": os.environ.get("IMAGELOCK_STORE", str(work / "store"))}
    subprocess.run([IMAGELOCK, "fetch", str(REPO / "examples/python-base")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    t = time.perf_counter()
    subprocess.run([IMAGELOCK, "build", str(REPO / "examples/python-base"), "-o", str(work / "oci"),
                    "--offline"], env=env, check=True, stdout=subprocess.DEVNULL)
    ours = time.perf_counter() - t

    mirrors = {s: machine_mirrors(s) for s in ("bookworm", "bookworm-updates", "bookworm-security")}
    network = [f"deb {m[0]} {s} main" for s, m in mirrors.items() if m]
    repo = local_repository(work, Path(env["IMAGELOCK_STORE"]), pins, network)
    names = [p["name"] for p in pins]
    variants = {
        # Unpacks the packages, runs no maintainer scripts: the closest to what imagelock does
        # (which also writes the dpkg database, accounts, CA bundle and ld.so.cache).
        "extract": names,
        # Installs with dpkg and runs the maintainer scripts. Scripts need a shell and core
        # tools present first, which only the Essential set provides (a superset of ours).
        "essential": names,
    }
    rows = [("imagelock build (python-base, OCI layout with gzip layers)", len(names), ours)]
    for variant, include in variants.items():
        args = mmdebstrap_command(variant, include, repo, work / f"mmdebstrap-{variant}.tar")
        t = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "SOURCE_DATE_EPOCH": str(lock["source_date_epoch"])})
        rows.append((f"mmdebstrap --variant={variant} (tar, from a local file repository)",
                     len(include), time.perf_counter() - t))
    print("| tool | packages requested | seconds | ratio to imagelock |\n|---|---:|---:|---:|")
    for name, n, secs in rows:
        print(f"| {name} | {n} | {secs:.2f} | {secs / ours:.1f}x |")
    print("\ntarget: imagelock at least 5x faster than mmdebstrap building the same package set "
          "(essential variant: installed with dpkg and maintainer scripts); both read local "
          "disk only")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
