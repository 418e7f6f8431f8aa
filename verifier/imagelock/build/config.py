"""The image config and manifest documents, as canonical JSON bytes (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

from imagelock.core.digest import canonical_json
from imagelock.formats.oci import MT_CONFIG, MT_LAYER_GZIP, MT_MANIFEST
from imagelock.formats.spec import ImageConfig


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")




def split_platform(platform: str) -> tuple[str, str, str | None]:
    parts = platform.split("/")
    return parts[0], parts[1], parts[2] if len(parts) > 2 else None


def config_bytes(
    cfg: ImageConfig,
    *,
    platform: str,
    diff_ids: list[str],
    layer_names: list[str],
    epoch: int,
) -> bytes:
    os_, arch, variant = split_platform(platform)
    runtime: dict[str, object] = {"Env": [f"{k}={v}" for k, v in sorted(cfg.env.items())]}
    if cfg.entrypoint is not None:
        runtime["Entrypoint"] = cfg.entrypoint
    if cfg.cmd is not None:
        runtime["Cmd"] = cfg.cmd
    if cfg.user:
        runtime["User"] = cfg.user
    if cfg.workdir:
        runtime["WorkingDir"] = cfg.workdir
    if cfg.labels:
        runtime["Labels"] = cfg.labels
    if cfg.ports:
        runtime["ExposedPorts"] = {p: {} for p in cfg.ports}
    if cfg.stop_signal:
        runtime["StopSignal"] = cfg.stop_signal
    created = rfc3339(epoch)
    doc: dict[str, object] = {
        "architecture": arch,
        "os": os_,
        "created": created,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": f"imagelock layer {n}"} for n in layer_names],
    }
    if variant:
        doc["variant"] = variant
    return canonical_json(doc)


def manifest_bytes(config_digest: str, config_size: int, layers: list[tuple[str, int]]) -> bytes:
    """`layers` is (digest, size) of each gzip blob, bottom first."""
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": MT_LAYER_GZIP, "digest": d, "size": s} for d, s in layers],
        }
    )
