"""The URI fields of imagelock's attestations: what they hold and in which form (docs/trust.md).

- An image (`resourceUri`): `oci://HOST[:PORT]/REPO@sha256:HEX` when it lives in a registry, else
  the package URL `pkg:oci/NAME@sha256%3AHEX` (purl's `oci` type), never a local path: that
  means nothing to others and says where the rebuilder keeps files.
- A file that travels with the image (the lock as a VSA's `policy.uri` and the provenance's
  `externalParameters.lock.uri`, the files holding `inputAttestations`): a relative reference
  (RFC 3986 section 4.2), resolved against the image's recipe or the directory beside the image;
  the `digest` next to it is what identifies the content.

Pure functions: no I/O.
"""

from __future__ import annotations

from urllib.parse import quote

from imagelock.oci.reference import parse_reference
from imagelock.trust.statement import sha256_hex


def oci_uri(reference: str, manifest_digest: str) -> str:
    """`oci://HOST/REPO@sha256:HEX` for a registry reference, pinned to `manifest_digest`."""
    ref = parse_reference(reference)
    return f"oci://{ref.name}@sha256:{sha256_hex(manifest_digest)}"


def purl(name: str, manifest_digest: str) -> str:
    """`pkg:oci/NAME@sha256%3AHEX`: an image identified by digest, wherever it is stored."""
    last = name.rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0].lower() or "image"
    return f"pkg:oci/{quote(last, safe='')}@sha256%3A{sha256_hex(manifest_digest)}"


def relative_reference(file_name: str) -> str:
    """A relative reference to a file beside the image or in its recipe: each path segment
    percent-encoded, so a colon can never make the first one read as a scheme."""
    return "/".join(quote(part, safe="") for part in file_name.split("/"))
