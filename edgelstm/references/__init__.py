"""Adapters for the reference interpreters edgelstm checks itself against.

Every adapter has the same small interface (`Reference`): load bytes, `run(x, reset=True)` returning
the output list, and `tensors()` giving every tensor of the last run where the runtime can keep them.
Which adapters work depends on what is installed; `available()` lists them. `register` adds one
(a factory given by importable path); `IsolatedReference` runs one in a child process, as `verify`
does, so that its crash or hang becomes a `ReferenceFailure` instead of ending the caller.
"""
from __future__ import annotations

from .base import (REFERENCE_NAMES, Adapter, Reference, adapter, available, get_reference, import_object, names,
                   register, unregister)
from .isolated import DEFAULT_TIMEOUT_S, IsolatedReference, ReferenceFailure, shutdown, signal_name

__all__ = ["Reference", "available", "get_reference", "REFERENCE_NAMES", "Adapter", "adapter", "names",
           "register", "unregister", "import_object", "IsolatedReference", "ReferenceFailure",
           "DEFAULT_TIMEOUT_S", "shutdown", "signal_name"]
