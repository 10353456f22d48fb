"""Writing .tflite files: a model as an editable tree of schema tables (`unpack`), serialized again
by `pack`, with the helpers the graph edits share (new buffers and constant tensors, metadata).

Built on the `tflite` package's generated builder functions (through `schema`), so it runs in the
runtime-only install: no TensorFlow, no ai-edge-litert. The tree holds every field the schema
bindings know, so `pack(unpack(m))` keeps the whole model (buffers, metadata, signatures, shape
signatures, variable tensors, intermediates, builtin options of every op); a file with fields the
bindings do not know is refused rather than written back without them. The byte layout may differ
from the converter's (buffer contents are 16-byte aligned, as the schema asks).
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Union

import flatbuffers
import numpy as np
from flatbuffers import encode, packer

from ..errors import ModelError
from ..tflite_reader import model_bytes
from .schema import Table, enum_members, read_table, write_table

FILE_IDENTIFIER = b"TFL3"
# The metadata entry `edgelstm convert` writes: preprocessing.json (input normalisation, classes).
PREPROCESSING_KEY = "edgelstm.preprocessing"

_TENSOR_TYPE_CODES = {name: code for code, name in enum_members("TensorType").items()}
_NUMPY_TENSOR_TYPES = {np.dtype(np.float32): "FLOAT32", np.dtype(np.float16): "FLOAT16", np.dtype(np.int32): "INT32",
                       np.dtype(np.uint8): "UINT8", np.dtype(np.int64): "INT64", np.dtype(np.bool_): "BOOL",
                       np.dtype(np.int16): "INT16", np.dtype(np.int8): "INT8", np.dtype(np.float64): "FLOAT64",
                       np.dtype(np.uint32): "UINT32", np.dtype(np.uint16): "UINT16", np.dtype(np.uint64): "UINT64"}


def unpack(source: Union[bytes, str, Path]) -> Table:
    """The model (bytes or a path) as a tree of schema tables, rooted at a "Model" Table.

    Buffers stored after the flatbuffer (files over 2 GB address them by offset and size) are read
    into the tree like any other, so the tree never points into the file it came from."""
    raw = model_bytes(source)
    if len(raw) < 8 or raw[4:8] != FILE_IDENTIFIER:
        raise ModelError("not a .tflite model: the flatbuffer identifier is not 'TFL3'")
    try:
        model = read_table(raw, encode.Get(packer.uoffset, raw, 0), "Model")
    except ModelError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise ModelError(f"malformed .tflite flatbuffer ({type(exc).__name__}: {exc})") from None
    for k, buf in enumerate(model.buffers or []):
        if buf.offset > 1:
            if buf.offset + buf.size > len(raw):
                raise ModelError(f"buffer {k} points past the end of the file")
            buf.data = np.frombuffer(raw, np.uint8, count=buf.size, offset=buf.offset).copy()
            buf.offset = buf.size = 0
    return model


def pack(model: Table) -> bytes:
    """The .tflite file of a "Model" Table."""
    if model.kind != "Model":
        raise ModelError(f"pack() writes a Model table, not a {model.kind}")
    size = sum(b.data.nbytes if isinstance(b.data, np.ndarray) else len(b.data or b"")
               for b in model.buffers or [])
    b = flatbuffers.Builder(size + (1 << 14))
    b.Finish(write_table(b, model), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def tensor_type(dtype: np.dtype) -> int:
    """The schema's TensorType code for a numpy dtype."""
    name = _NUMPY_TENSOR_TYPES.get(np.dtype(dtype))
    if name is None:
        raise ModelError(f"no .tflite tensor type for numpy {np.dtype(dtype)}")
    return _TENSOR_TYPE_CODES[name]


def add_buffer(model: Table, data: Union[bytes, np.ndarray]) -> int:
    """Append a buffer holding `data` (raw bytes, or an array's little-endian bytes); its index."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data.astype(data.dtype.newbyteorder("<"), copy=False)).tobytes()
    model.buffers = list(model.buffers or []) + [Table("Buffer", data=np.frombuffer(bytes(data), np.uint8).copy())]
    return len(model.buffers) - 1


def add_constant(model: Table, values: np.ndarray, name: str, subgraph: int = 0) -> int:
    """Append a constant tensor holding `values` (its shape and dtype) to a subgraph; its index."""
    values = np.asarray(values)
    tensor = Table("Tensor", shape=np.asarray(values.shape, np.int32), type=tensor_type(values.dtype),
                   buffer=add_buffer(model, values), name=name)
    sg = model.subgraphs[subgraph]
    sg.tensors = list(sg.tensors or []) + [tensor]
    return len(sg.tensors) - 1


def with_metadata(model: bytes, name: str, data: bytes) -> bytes:
    """`model` with a Model.metadata entry `name` pointing at a new buffer holding `data` (an
    existing entry of that name is replaced)."""
    m = unpack(model)
    entry = Table("Metadata", name=name, buffer=add_buffer(m, bytes(data)))
    m.metadata = [e for e in (m.metadata or []) if e.name != name] + [entry]
    return pack(m)
