"""Build stage: from pinned inputs to canonical layers and an image."""
