"""Build locks and report which ISA-L code path compressed them; run by
tests/test_encoder_dispatch.py natively and under `qemu-x86_64-static -cpu MODEL`.

Usage: python dispatch_build.py STORE OUTDIR LOCK... ; prints one JSON document.

ISA-L picks its deflate code once per process from CPUID (include/multibinary.asm,
mbin_dispatch_init5/6): base C code without SSE4.2, then SSE4.2 (`_01`), AVX (`_02`), AVX2
(`_04`), AVX-512 (`_06`). The same test here, run by the same CPUID instruction (emulated under
qemu), says which path a run really took, so a run cannot claim a path it did not use.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import sys
from pathlib import Path

# x86-64 SysV: cpuid(leaf, subleaf, uint32_t out[4]) and xgetbv(ecx) -> edx:eax.
_CPUID = bytes.fromhex("53" "4989d0" "89f8" "89f1" "0fa2" "418900" "41895804" "41894808"
                       "4189500c" "5b" "c3")
_XGETBV = bytes.fromhex("89f9" "0f01d0" "48c1e220" "4809d0" "c3")

SSE4_2, OSXSAVE, AVX = 1 << 20, 1 << 27, 1 << 28  # CPUID.1:ECX
AVX2 = 1 << 5  # CPUID.7.0:EBX
AVX512_G1 = (1 << 16) | (1 << 17) | (1 << 28) | (1 << 30) | (1 << 31)  # F, DQ, CD, BW, VL
XMM_YMM, ZMM_OPMASK = 0x6, 0xE0  # XCR0


def isal_path() -> str:
    """The path ISA-L's dispatcher chooses on this CPU, by its own rules."""
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(_CPUID.ljust(64, b"\x90") + _XGETBV)
    base = ctypes.addressof(ctypes.c_char.from_buffer(page))
    cpuid_fn = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32,
                                ctypes.POINTER(ctypes.c_uint32))(base)
    xgetbv_fn = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint32)(base + 64)

    def cpuid(leaf: int) -> tuple[int, ...]:
        regs = (ctypes.c_uint32 * 4)()
        cpuid_fn(leaf, 0, regs)
        return tuple(regs)  # eax, ebx, ecx, edx

    ecx1 = cpuid(1)[2]
    if not ecx1 & SSE4_2:
        return "base"
    if not ecx1 & OSXSAVE:
        return "sse4.2"
    xcr0 = xgetbv_fn(0)
    if xcr0 & XMM_YMM != XMM_YMM or not ecx1 & AVX:
        return "sse4.2"
    ebx7 = cpuid(7)[1]
    if not ebx7 & AVX2:
        return "avx"
    if xcr0 & ZMM_OPMASK == ZMM_OPMASK and ebx7 & AVX512_G1 == AVX512_G1:
        return "avx512"
    return "avx2"


def main() -> None:
    from imagelock import api

    store, out = Path(sys.argv[1]), Path(sys.argv[2])
    builds = {}
    for i, lock in enumerate(sys.argv[3:]):
        res = api.build(Path(lock), output=out / f"oci-{i}", format="oci", store=store,
                        offline=True)
        builds[lock] = {"verdict": res.verdict, "platforms": {
            p: {"diff_ids": [x.diff_id for x in d.layers], "layers": [x.digest for x in d.layers],
                "config_digest": d.config_digest, "manifest_digest": d.manifest_digest}
            for p, d in res.platforms.items()}}
    print(json.dumps({"path": isal_path(), "builds": builds}))


if __name__ == "__main__":
    main()
