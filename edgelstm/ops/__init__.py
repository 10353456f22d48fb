"""One module per op kernel; importing this package registers every module found here."""
import pkgutil
from importlib import import_module

from .base import OpKernel, build_kernel, register, supported_opcodes

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base" and not _info.name.startswith("_"):
        import_module(f"{__name__}.{_info.name}")

__all__ = ["OpKernel", "build_kernel", "register", "supported_opcodes"]
