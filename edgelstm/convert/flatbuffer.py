"""Writing .tflite flatbuffers back after editing them with the schema's object API."""
from __future__ import annotations

import numpy as np

PREPROCESSING_KEY = "edgelstm.preprocessing"


def pack(m) -> bytes:
    """Serialize an `ai_edge_litert.schema_py_generated.ModelT` object tree."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def with_metadata(model: bytes, name: str, data: bytes) -> bytes:
    """`model` with a Model.metadata entry `name` pointing at a new buffer holding `data`
    (an existing entry of that name is replaced)."""
    from ai_edge_litert import schema_py_generated as S

    m = S.ModelT.InitFromPackedBuf(bytearray(model), 0)
    buf = S.BufferT()
    buf.data = np.frombuffer(bytes(data), dtype=np.uint8)
    m.buffers.append(buf)
    entry = S.MetadataT()
    entry.name, entry.buffer = name.encode(), len(m.buffers) - 1
    m.metadata = [e for e in (m.metadata or []) if (e.name.decode() if isinstance(e.name, bytes) else e.name) != name]
    m.metadata.append(entry)
    return pack(m)
