"""One module per op kernel; importing this package registers them all."""
from importlib import import_module

from .base import OpKernel, build_kernel, register, supported_opcodes

_MODULES = [
    "lstm",
]
for _m in _MODULES:
    import_module(f"{__name__}.{_m}")

__all__ = ["OpKernel", "build_kernel", "register", "supported_opcodes"]
