"""The exceptions edgelstm raises on purpose.

Everything a user can cause (a malformed model, an op we do not support, an input of the wrong
shape) surfaces as one of these, never as a numpy traceback or a crash inside a JIT kernel.
"""
from typing import Optional


class EdgeLSTMError(ValueError):
    """Base class of every error edgelstm raises for bad models or bad inputs."""


class ModelError(EdgeLSTMError):
    """The .tflite file is malformed, inconsistent, or uses something edgelstm does not support."""


class InputError(EdgeLSTMError):
    """An input array does not match what the model expects."""


class ReferenceUnavailable(EdgeLSTMError):
    """The requested reference interpreter is not installed or cannot run here."""


class ReferenceFailure(EdgeLSTMError):
    """A reference interpreter's process crashed (`status` "crashed", `signal` set when a signal
    killed it) or did not answer within the time limit (`status` "timed_out", `seconds` the limit)."""

    def __init__(self, message: str, reference: str, status: str, signal: Optional[int] = None,
                 seconds: Optional[float] = None):
        super().__init__(message)
        self.reference, self.status, self.signal, self.seconds = reference, status, signal, seconds


class ConversionError(EdgeLSTMError):
    """A Keras model cannot be converted to a correct full-int8 .tflite; the message names the layer
    and the reason (`layer` and `reason` hold them separately when the cause is one layer)."""

    def __init__(self, message: str, layer: "Optional[str]" = None, reason: "Optional[str]" = None):
        super().__init__(message)
        self.layer = layer
        self.reason = reason
