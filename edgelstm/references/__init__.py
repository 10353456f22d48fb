"""Adapters for the reference interpreters edgelstm checks itself against.

Every adapter has the same small interface (`Reference`): load bytes, `run(x, reset=True)` returning
the output list, and `tensors()` giving every tensor of the last run where the runtime can keep them.
Which adapters work depends on what is installed; `available()` lists them.
"""
from __future__ import annotations

from .base import Reference, available, get_reference, REFERENCE_NAMES

__all__ = ["Reference", "available", "get_reference", "REFERENCE_NAMES"]
