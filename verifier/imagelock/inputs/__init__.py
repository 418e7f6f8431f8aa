"""Inputs stage: each input kind of a lock, behind one interface (docs/architecture.md)."""
