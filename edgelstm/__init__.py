"""edgelstm: bit-exact int8 LSTM inference for .tflite models, without TensorFlow.

    import edgelstm
    m = edgelstm.load("model.tflite")
    y = m.run(x)
"""
from .errors import EdgeLSTMError, InputError, ModelError, ReferenceFailure, ReferenceUnavailable

__version__ = "0.1.0"
__all__ = ["load", "Model", "TensorInfo", "flavors", "flavor", "register_flavor", "unregister_flavor", "Flavor", "Policy",
           "EdgeLSTMError", "ModelError", "InputError", "ReferenceUnavailable", "ReferenceFailure", "__version__"]


def __getattr__(name: str):
    # The kernels import Numba (about a second); load them on first use, so that `edgelstm --help`,
    # `edgelstm doctor` and a profiler's cold-start clock do not pay for them up front.
    if name in ("load", "Model", "TensorInfo"):
        from . import model

        return getattr(model, name)
    if name in ("flavors", "flavor", "register_flavor", "unregister_flavor", "Flavor", "Policy"):
        from . import ops  # importing the package registers every kernel in its flavour's table

        return {"flavors": ops.flavors, "flavor": ops.get_flavor, "register_flavor": ops.register_flavor,
                "unregister_flavor": ops.unregister_flavor, "Flavor": ops.Flavor, "Policy": ops.Policy}[name]
    raise AttributeError(f"module 'edgelstm' has no attribute {name!r}")
