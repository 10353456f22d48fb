"""UNIDIRECTIONAL_SEQUENCE_LSTM, full-integer 8x8_16 path (int8 activations and weights, int16 cell).

- kernel.py: what every flavour shares (structure checks, the named `LSTMRecord`, time-major
  handling) and `with_steps`, to swap one stage of a flavour's eval;
- matmul.py: fused gate weights with folded zero points, and the Numba matrix-vector products;
- litert.py: LiteRT's arithmetic (flavour "tflite");
- tflm.py: TFLite Micro's (flavour "tflm").
"""
from .kernel import ActivationTables, LSTMKernel, LSTMRecord, LSTMTensors, with_steps
from .litert import LiteRTLSTM
from .matmul import GateParams
from .tflm import TFLMLSTM

__all__ = ["ActivationTables", "GateParams", "LSTMKernel", "LSTMRecord", "LSTMTensors", "LiteRTLSTM", "TFLMLSTM",
           "with_steps"]
