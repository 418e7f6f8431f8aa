"""Differences between the JSON documents of two images (index, manifest, config), and between a
rebuilt image and the lock's expected digests, each classified (docs/rebuild-report.md).

The whole comparison walks index -> manifest -> config -> layers -> files: this module does the
documents; `walk` pairs layers by position and `entries` indexes and compares their tar entries
(path -> header fields + sha256 of the content, computed while streaming), so only metadata is
held in memory, one layer pair at a time, never a layer's bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from imagelock.compare.blobs import compression_of
from imagelock.core.digest import canonical_json
from imagelock.formats.lock import ExpectedImage
from imagelock.formats.report import Category, Change, Difference, Scope
from imagelock.oci.image import Image


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return canonical_json(value).decode("utf-8")


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _doc(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def diff_ids_of(config: bytes) -> list[str]:
    doc = _doc(config) or {}
    rootfs = doc.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return [str(i) for i in ids] if isinstance(ids, list) else []


def layer_names(config: bytes) -> list[str | None]:
    """Layer names from an imagelock config's history (`imagelock layer NAME`), by layer."""
    doc = _doc(config) or {}
    history = doc.get("history")
    names: list[str | None] = []
    for h in history if isinstance(history, list) else []:
        if not isinstance(h, dict) or h.get("empty_layer"):
            continue
        by = str(h.get("created_by", ""))
        names.append(by.removeprefix("imagelock layer ") if by.startswith("imagelock layer ")
                     else None)
    return names


def media_types(manifest: bytes) -> list[str | None]:
    doc = _doc(manifest) or {}
    layers = doc.get("layers")
    return [str(x.get("mediaType")) if isinstance(x, dict) else None
            for x in (layers if isinstance(layers, list) else [])]



def _d(category: Category, scope: Scope, fld: str, expected: object, got: object, *,
       layer: int | None = None, layer_name: str | None = None, derived: bool = False,
       path: str | None = None) -> Difference:
    change: Change = "added" if expected is None else "removed" if got is None else "changed"
    return Difference(category=category, scope=scope, layer=layer, layer_name=layer_name,
                      path=path, field=fld, change=change, expected=_text(expected),
                      got=_text(got), derived=derived)


def diff_index(expected: Image, got: Image) -> list[Difference]:
    """What the index says about each image: its platform (names and tags are not identity)."""
    if expected.platform != got.platform:
        return [_d("metadata", "index", "platform", expected.platform, got.platform)]
    return []


def _dict_diffs(e: dict[str, Any], g: dict[str, Any], scope: Scope, prefix: str,
                skip: Iterable[str] = ()) -> list[Difference]:
    out = []
    for key in sorted(set(e) | set(g)):
        if key in skip or e.get(key) == g.get(key):
            continue
        category: Category = "timestamp" if key == "created" else "metadata"
        out.append(_d(category, scope, f"{prefix}{key}", e.get(key), g.get(key)))
    return out


def diff_manifest(expected: bytes, got: bytes, layer_status: dict[int, str],
                  names: list[str | None]) -> list[Difference]:
    """Manifest fields; `layer_status[i]` says why layer i's blob differs (see LayerWalk)."""
    if expected == got:
        return []
    e, g = _doc(expected), _doc(got)
    if e is None or g is None:
        return [_d("metadata", "manifest", "(document)", "valid JSON" if e else "invalid JSON",
                   "valid JSON" if g else "invalid JSON")]
    out = _dict_diffs(e, g, "manifest", "", skip=("config", "layers", "annotations"))
    ec, gc = e.get("config") or {}, g.get("config") or {}
    if isinstance(ec, dict) and isinstance(gc, dict):
        if ec.get("mediaType") != gc.get("mediaType"):
            out.append(_d("metadata", "manifest", "config.mediaType", ec.get("mediaType"),
                          gc.get("mediaType")))
        if (ec.get("digest"), ec.get("size")) != (gc.get("digest"), gc.get("size")):
            # Follows from the config differences listed below.
            out.append(_d("metadata", "manifest", "config.digest",
                          f"{ec.get('digest')} ({ec.get('size')} bytes)",
                          f"{gc.get('digest')} ({gc.get('size')} bytes)", derived=True))
    el, gl = _list(e.get("layers")), _list(g.get("layers"))
    if len(el) != len(gl):
        out.append(_d("content", "manifest", "layers", f"{len(el)} layers", f"{len(gl)} layers",
                      derived=True))
    for i, (a, b) in enumerate(zip(el, gl, strict=False)):
        name = names[i] if i < len(names) else None
        if not isinstance(a, dict) or not isinstance(b, dict):
            continue
        at, bt = a.get("mediaType"), b.get("mediaType")
        if at != bt:
            comp_changed = compression_of(str(at)) != compression_of(str(bt))
            out.append(_d("compression" if comp_changed else "metadata", "manifest",
                          f"layers[{i}].mediaType", at, bt, layer=i, layer_name=name))
        if (a.get("digest"), a.get("size")) != (b.get("digest"), b.get("size")):
            status = layer_status.get(i, "unexplained")
            category: Category = "compression" if status == "compression" else "content"
            out.append(_d(category, "manifest", f"layers[{i}].digest",
                          f"{a.get('digest')} ({a.get('size')} bytes)",
                          f"{b.get('digest')} ({b.get('size')} bytes)", layer=i, layer_name=name,
                          derived=status == "explained"))
        ea, ga = a.get("annotations") or {}, b.get("annotations") or {}
        for key in sorted(set(ea) | set(ga)):
            if ea.get(key) != ga.get(key):
                out.append(_d("metadata", "manifest", f"layers[{i}].annotations[{key}]",
                              ea.get(key), ga.get(key), layer=i, layer_name=name))
    ea, ga = e.get("annotations") or {}, g.get("annotations") or {}
    for key in sorted(set(ea) | set(ga)):
        if ea.get(key) != ga.get(key):
            out.append(_d("metadata", "manifest", f"annotations[{key}]", ea.get(key), ga.get(key)))
    if not out:
        out.append(_d("metadata", "manifest", "(encoding)", "same fields, these bytes",
                      "same fields, other bytes (key order, whitespace or escaping)"))
    return out


def _env(items: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        name, _, _ = str(item).partition("=")
        out[name] = str(item)
    return out


def _runtime_diffs(e: dict[str, Any], g: dict[str, Any]) -> list[Difference]:
    out = []
    for key in sorted(set(e) | set(g)):
        a, b = e.get(key), g.get(key)
        if a == b:
            continue
        fld = f"config.{key}"
        if key == "Env":
            ea, gb = _env(a), _env(b)
            for name in sorted(set(ea) | set(gb)):
                if ea.get(name) != gb.get(name):
                    out.append(_d("metadata", "config", fld, ea.get(name), gb.get(name)))
            if ea == gb:
                out.append(_d("ordering", "config", fld, a, b))
        elif isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    av, bv = a.get(sub), b.get(sub)
                    out.append(_d("metadata", "config", fld,
                                  None if sub not in a else f"{sub}={_text(av)}",
                                  None if sub not in b else f"{sub}={_text(bv)}"))
        else:
            out.append(_d("metadata", "config", fld, a, b))
    return out


def diff_config(expected: bytes, got: bytes, explained: set[int],
                names: list[str | None]) -> list[Difference]:
    """Config fields one by one; a diff_id difference is derived when its layer is explained."""
    if expected == got:
        return []
    e, g = _doc(expected), _doc(got)
    if e is None or g is None:
        return [_d("metadata", "config", "(document)", "valid JSON" if e else "invalid JSON",
                   "valid JSON" if g else "invalid JSON")]
    out = _dict_diffs(e, g, "config", "", skip=("config", "history", "rootfs"))
    ec, gc = e.get("config"), g.get("config")
    out += _runtime_diffs(ec if isinstance(ec, dict) else {}, gc if isinstance(gc, dict) else {})
    eh, gh = _list(e.get("history")), _list(g.get("history"))
    if len(eh) != len(gh):
        out.append(_d("metadata", "config", "history", f"{len(eh)} entries", f"{len(gh)} entries"))
    for i, (a, b) in enumerate(zip(eh, gh, strict=False)):
        if isinstance(a, dict) and isinstance(b, dict):
            out += _dict_diffs(a, b, "config", f"history[{i}].")
    er, gr = e.get("rootfs") or {}, g.get("rootfs") or {}
    if isinstance(er, dict) and isinstance(gr, dict):
        if er.get("type") != gr.get("type"):
            out.append(_d("metadata", "config", "rootfs.type", er.get("type"), gr.get("type")))
        ei, gi = er.get("diff_ids") or [], gr.get("diff_ids") or []
        for i in range(max(len(ei), len(gi))):
            a = ei[i] if i < len(ei) else None
            b = gi[i] if i < len(gi) else None
            if a != b:
                out.append(_d("content", "config", f"rootfs.diff_ids[{i}]", a, b, layer=i,
                              layer_name=names[i] if i < len(names) else None,
                              derived=i in explained))
    if not out:
        out.append(_d("metadata", "config", "(encoding)", "same fields, these bytes",
                      "same fields, other bytes (key order, whitespace or escaping)"))
    return out








def diff_lock(lock: ExpectedImage, rebuilt: Image) -> list[Difference]:
    """Without a published image only digests can be compared: say which ones differ."""
    out: list[Difference] = []
    ids, names = diff_ids_of(rebuilt.config), layer_names(rebuilt.config)
    if len(lock.layers) != len(rebuilt.layers):
        out.append(_d("content", "manifest", "layers", f"{len(lock.layers)} layers",
                      f"{len(rebuilt.layers)} layers"))
    content_differs = False
    for i, (exp, blob) in enumerate(zip(lock.layers, rebuilt.layers, strict=False)):
        got_id = ids[i] if i < len(ids) else None
        got_name = names[i] if i < len(names) else None
        if exp.name != got_name:
            out.append(_d("metadata", "config", f"history[{i}].created_by", exp.name, got_name,
                          layer=i, layer_name=exp.name))
        if exp.diff_id != got_id:
            content_differs = True
            out.append(_d("content", "config", f"rootfs.diff_ids[{i}]", exp.diff_id, got_id,
                          layer=i, layer_name=exp.name))
        elif (exp.digest, exp.size) != (blob.digest, blob.size):
            out.append(_d("compression", "manifest", f"layers[{i}].digest",
                          f"{exp.digest} ({exp.size} bytes)", f"{blob.digest} ({blob.size} bytes)",
                          layer=i, layer_name=exp.name))
    if (lock.config_digest != rebuilt.config_digest and not content_differs
            and len(lock.layers) == len(rebuilt.layers)):
        out.append(_d("metadata", "config", "(document)", lock.config_digest,
                      f"{rebuilt.config_digest} (same diff_ids: a runtime field, `created`, the "
                      "history or the platform differs; compare with the published image to "
                      "see which)"))
    return out





