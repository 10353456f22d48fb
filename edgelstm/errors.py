"""The exceptions edgelstm raises on purpose.

Everything a user can cause (a malformed model, an op we do not support, an input of the wrong
shape) surfaces as one of these, never as a numpy traceback or a crash inside a JIT kernel.
"""


class EdgeLSTMError(ValueError):
    """Base class of every error edgelstm raises for bad models or bad inputs."""


class ModelError(EdgeLSTMError):
    """The .tflite file is malformed, inconsistent, or uses something edgelstm does not support."""


class InputError(EdgeLSTMError):
    """An input array does not match what the model expects."""


class ReferenceUnavailable(EdgeLSTMError):
    """The requested reference interpreter is not installed or cannot run here."""
