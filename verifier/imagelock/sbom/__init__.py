"""What is inside an image, from its lock alone: the inventory, version queries across many
locks or images, and SPDX and CycloneDX documents.

Modules, each with one job: `items` (the lock's inputs as a flat list: the one module that
reads the lock's sections), `targets` (a LOCK or REF argument -> the lock that describes it),
`query` (`--package 'NAME<VERSION'`), `inspect` (the `inspect` command), `metadata` (what the
pinned bytes say of themselves: a .deb's control fields and DEP-5 copyright, a wheel's
METADATA), `licences` (their licences as SPDX expressions), `bom` (one neutral description of
the image), `spdx` and `cyclonedx` (the two documents, built and validated with the field's own
libraries).
"""
