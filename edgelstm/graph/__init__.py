"""The graph layer: .tflite graphs read, checked, rewritten and written back, with no TensorFlow and
no ai-edge-litert (numpy and the `tflite` schema bindings, as the runtime).

- schema.py: every schema table as an editable `Table`, decoded and encoded through the `tflite`
  package's generated code;
- writer.py: `unpack` a model into Tables, `pack` it into a .tflite file, and the edits the
  rewrites share (buffers, constant tensors, metadata);
- shapes.py: the shape RESHAPE gives and the elements STRIDED_SLICE selects (LiteRT's rules,
  which the kernels' prepare step follows too);
- checks.py: model checks shared by `edgelstm lint` and the repair (byte-copying ops, the LSTM
  hidden-state tensors and their quantization, LiteRT's cell-scale range);
- repair.py: the quantization repair `edgelstm convert` applies (cell-state scale, hidden state);
- streaming/: the single-step rewrite behind `edgelstm stream`.

It imports only the reader, errors, lstm_shared and fixedpoint from the rest of edgelstm, never the
kernels, the model, convert/ or the command line.
"""
from .schema import Table
from .streaming import streaming_model
from .writer import pack, unpack, with_metadata

__all__ = ["Table", "unpack", "pack", "with_metadata", "streaming_model"]
