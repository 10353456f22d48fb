"""The common interface of the reference-interpreter adapters, and the registry of them.

A reference is registered under a name with its factory, `factory(model_bytes,
preserve_all_tensors=False) -> Reference`, given as an importable "module:attr" path (or an object
that can be imported back by its module and qualified name). The registry keeps the path, not the
object, because `verify` builds every reference in a child process (see `isolated`), which imports
the factory afresh: a factory must be reachable by import, so not a lambda, a nested function or
something defined in the `__main__` script.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np

from ..errors import EdgeLSTMError, ReferenceUnavailable


class Reference(ABC):
    """One reference interpreter holding one model."""

    name: str = ""
    version: str = ""

    @abstractmethod
    def run(self, x: list[np.ndarray], reset: bool = True) -> list[np.ndarray]:
        """Outputs for inputs x; the interpreter's variables (LSTM state) are reset first if asked."""

    def tensors(self) -> dict[int, np.ndarray]:
        """Every tensor after the last run, by index (empty if the runtime cannot keep them)."""
        return {}


@dataclass(frozen=True)
class Adapter:
    """A registered reference: importable "module:attr" paths of its factory and, optionally, of a
    no-argument `installed() -> bool` check (without one it counts as installed)."""

    name: str
    factory: str
    installed: Optional[str] = None


_BUILTIN = {
    "litert": "edgelstm.references.litert",
    "tflite-runtime": "edgelstm.references.tflite_runtime",
    "tflite": "edgelstm.references.tf_lite",
    "tflm": "edgelstm.references.tflm",
}
REFERENCE_NAMES = tuple(_BUILTIN)  # the built-in adapters
_REGISTRY: dict[str, Adapter] = {n: Adapter(n, f"{m}:make", f"{m}:installed") for n, m in _BUILTIN.items()}


def _split_path(path: str) -> tuple[str, str]:
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise EdgeLSTMError(f"expected an importable 'module:attr' path, got {path!r}")
    return module_name, attr


def import_object(path: str) -> Any:
    """The object at an importable "module:attr" path (attr may be dotted: "module:Class.method")."""
    module_name, attr = _split_path(path)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ReferenceUnavailable(f"cannot import {path}: {exc}") from None
    return obj


def object_path(obj: Union[str, Callable]) -> str:
    """The "module:attr" path under which `obj` can be imported again (a string is taken as one)."""
    if isinstance(obj, str):
        _split_path(obj)
        return obj
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module_name or not qualname or "<" in qualname:
        raise EdgeLSTMError(f"{obj!r} cannot be imported by name (a lambda or a function defined inside "
                            "another); define it at module level or pass a 'module:attr' path")
    if module_name == "__main__":
        raise EdgeLSTMError(f"{qualname} is defined in the __main__ script, which a child process cannot "
                            "import; move it into a module or pass a 'module:attr' path")
    path = f"{module_name}:{qualname}"
    try:
        found = import_object(path)
    except ReferenceUnavailable:
        found = None
    if found is not obj:
        raise EdgeLSTMError(f"{obj!r} is not what importing {path} gives; pass a 'module:attr' path")
    return path


def register(name: str, factory: Union[str, Callable[..., Reference]],
             installed: Union[str, Callable[[], bool], None] = None) -> Adapter:
    """Make `name` a reference for `get_reference`, `available` and `verify`.

    `factory(model_bytes, preserve_all_tensors=False)` builds the `Reference`; `installed()` says
    whether it can run here (default: always). Both are given as "module:attr" paths or as objects
    importable by their module and qualified name, because `verify` builds the reference in a child
    process that imports the factory again. Registering the same factory twice under one name is a
    no-op (a module that registers at import may be imported again); another factory under a name
    in use is refused: `unregister` it first.
    """
    if not isinstance(name, str) or not name or name == "all":
        raise EdgeLSTMError(f"invalid reference name {name!r} ('all' means every installed reference)")
    entry = Adapter(name, object_path(factory), None if installed is None else object_path(installed))
    current = _REGISTRY.get(name)
    if current is not None and current != entry:
        raise EdgeLSTMError(f"reference {name!r} is already registered (factory {current.factory}); "
                            "unregister it first")
    _REGISTRY[name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a reference added with `register` (the built-in ones stay)."""
    if name in _BUILTIN:
        raise EdgeLSTMError(f"{name!r} is a built-in reference and cannot be unregistered")
    if name not in _REGISTRY:
        raise ReferenceUnavailable(f"unknown reference {name!r}; known: {', '.join(_REGISTRY)}")
    del _REGISTRY[name]


def names() -> tuple[str, ...]:
    """Every registered reference name, built-in ones first (installed or not)."""
    return tuple(_REGISTRY)


def adapter(name: str) -> Adapter:
    """The registry entry of `name`; ReferenceUnavailable if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ReferenceUnavailable(f"unknown reference {name!r}; known: {', '.join(_REGISTRY)}") from None


def get_reference(name: str, model_bytes: bytes, preserve_all_tensors: bool = False) -> Reference:
    """Build the named reference for a model in this process; raises ReferenceUnavailable if it is
    not installed. (`verify` uses `IsolatedReference` instead, which builds it in a child process.)"""
    return import_object(adapter(name).factory)(model_bytes, preserve_all_tensors=preserve_all_tensors)


def available() -> list[str]:
    """Names of the registered reference interpreters that are installed in this environment."""
    found = []
    for entry in _REGISTRY.values():
        if entry.installed is None:
            found.append(entry.name)
            continue
        try:
            ok = bool(import_object(entry.installed)())
        except ReferenceUnavailable:
            ok = False
        if ok:
            found.append(entry.name)
    return found
