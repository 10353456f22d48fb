"""One module per op kernel (ops/lstm/ is a package: the LSTM has a kernel per flavour); importing
this package registers every kernel in its flavour's table (ops/flavor.py)."""
import pkgutil
from importlib import import_module

from .base import OpKernel, build_kernel, register, supported_opcodes
from .flavor import Flavor, Policy, flavors, get_flavor, register_flavor, unregister_flavor

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base" and not _info.name.startswith("_"):
        import_module(f"{__name__}.{_info.name}")

__all__ = ["Flavor", "OpKernel", "Policy", "build_kernel", "flavors", "get_flavor", "register", "register_flavor",
           "supported_opcodes", "unregister_flavor"]
