"""edgelstm: bit-exact int8 LSTM inference for .tflite models, without TensorFlow.

    import edgelstm
    m = edgelstm.load("model.tflite")
    y = m.run(x)
"""
from .errors import EdgeLSTMError, InputError, ModelError, ReferenceUnavailable
from .model import Model, TensorInfo, load

__version__ = "0.1.0"
__all__ = ["load", "Model", "TensorInfo", "EdgeLSTMError", "ModelError", "InputError",
           "ReferenceUnavailable", "__version__"]
