"""The .tflite schema as plain Python objects, read and written through the `tflite` package alone.

The `tflite` package (the schema bindings the runtime already depends on) has, per schema table,
reader accessors and builder functions (`TensorStart`, `TensorAddShape`, `TensorStartShapeVector`,
`TensorEnd`...), but no object API like ai-edge-litert's `ModelT`, which editing a model needs. So
this module learns each table's layout from those generated functions, once per table type:

- a field's slot, and for a scalar its type and default: its `<Table>Add<Field>` function is called
  on a recorder standing in for the builder, which notes e.g. `PrependInt8Slot(1, value, 0)`;
- a vector's element type, and whether an offset field holds a string or a table: a flatbuffer
  holding only that field is built with the generated functions and read back with the generated
  accessor.

With the layouts known, `Table` holds one table of any type with its fields under their schema
names (snake_case, as `tflite_reader` names builtin options), `read_table` decodes a flatbuffer
into such objects and `write_table` encodes them with the generated builder functions. Two things
the Python generator drops are written down here: the enum behind each union field (`UNION_ENUMS`)
and the alignment schema.fbs asks for buffer contents (`FORCE_ALIGN`).

A field that the installed bindings do not know (a file from a newer schema) is never dropped
silently: reading a table that sets one raises ModelError.
"""
from __future__ import annotations

import functools
import importlib
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Optional

import flatbuffers
import numpy as np
import tflite
from flatbuffers import encode, number_types, packer
from flatbuffers.table import Table as FlatTable

from ..errors import ModelError

# The union fields of the schema and the enum whose member names are the tables they can hold:
# flatc's Python accessor of a union says nothing about its type.
UNION_ENUMS: dict[tuple[str, str], str] = {
    ("Operator", "BuiltinOptions"): "BuiltinOptions",
    ("Operator", "BuiltinOptions2"): "BuiltinOptions2",
    ("QuantizationParameters", "Details"): "QuantizationDetails",
    ("DimensionMetadata", "ArraySegments"): "SparseIndexVector",
    ("DimensionMetadata", "ArrayIndices"): "SparseIndexVector",
}
# schema.fbs: `table Buffer { data:[ubyte] (force_align: 16); ... }`, so that kernels may read
# int16/int32 constants in place (TFLite Micro does, on cores that fault on unaligned loads).
FORCE_ALIGN: dict[tuple[str, str], int] = {("Buffer", "data"): 16}

SCALAR, STRING, TABLE, UNION, VECTOR, TABLES, STRINGS = (
    "scalar", "string", "table", "union", "vector", "tables", "strings")

_SCALAR_TYPES = ("Bool", "Uint8", "Int8", "Uint16", "Int16", "Uint32", "Int32", "Uint64", "Int64", "Float32",
                 "Float64")
_IDENTIFIER = re.compile(r"[A-Z][A-Za-z0-9]*\Z")


@dataclass(frozen=True)
class Field:
    """One field of a table type, as the generated bindings lay it out."""

    name: str                        # schema name, snake_case ("shape_signature")
    accessor: str                    # generated name, CamelCase ("ShapeSignature")
    slot: int                        # position in the table's vtable
    kind: str                        # SCALAR, STRING, TABLE, UNION, VECTOR, TABLES or STRINGS
    flags: Any = None                # flatbuffers number type of a scalar / of a VECTOR's elements
    default: Any = None              # a scalar's default (the builder leaves a default value out)
    table: Optional[str] = None      # the table type of a TABLE or TABLES field
    union: Optional[str] = None      # the enum of a UNION field
    type_slot: Optional[int] = None  # the slot of a UNION's type (a field of its own in the file)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(number_types.to_numpy_type(self.flags))


@dataclass(frozen=True)
class Layout:
    """Every field of one table type."""

    kind: str
    n_slots: int                     # the schema's field count, deprecated fields included
    fields: tuple[Field, ...]
    by_name: dict[str, Field] = field(compare=False, repr=False)


def snake_case(name: str) -> str:
    """`ShapeSignature` -> `shape_signature`, the way `tflite_reader` names builtin options."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def enum_members(enum: str) -> dict[int, str]:
    """An enum of the schema (`BuiltinOptions`, `TensorType`...) as value -> name."""
    cls = getattr(tflite, enum)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _module(kind: str):
    """The generated module of table type `kind`; ModelError if the bindings have no such table."""
    module = None
    if _IDENTIFIER.match(kind):
        try:
            module = importlib.import_module(f"tflite.{kind}")
        except ImportError:
            module = None
    if module is None or not isinstance(getattr(module, kind, None), type) or not hasattr(module, kind + "Start"):
        raise ModelError(f"the tflite schema bindings ({_version()}) have no table type '{kind}'")
    return module


def _version() -> str:
    return f"tflite {getattr(tflite, '__version__', '?')}"


class _Recorder:
    """Stands in for a flatbuffers.Builder and keeps the calls a generated builder function makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):
        def call(*args):
            self.calls.append((name, args))
            return 0
        return call


def _recorded(fn, *args) -> tuple[str, tuple]:
    rec = _Recorder()
    fn(rec, *args)
    if len(rec.calls) != 1:
        raise ModelError(f"unexpected generated code in {fn.__module__}.{fn.__name__}: {rec.calls}")
    return rec.calls[0]


def _probe(module, kind: str, accessor: str, make_value) -> Any:
    """A `kind` table whose only field `accessor` holds what make_value(builder) writes, read back
    through the generated accessor object."""
    b = flatbuffers.Builder(64)
    value = make_value(b)
    getattr(module, kind + "Start")(b)
    getattr(module, f"{kind}Add{accessor}")(b, value)
    b.Finish(getattr(module, kind + "End")(b))
    buf = b.Output()
    obj = getattr(module, kind)()
    obj.Init(buf, encode.Get(packer.uoffset, buf, 0))
    return obj


def _one_string_vector(b: flatbuffers.Builder) -> int:
    s = b.CreateString("probe")
    b.StartVector(number_types.UOffsetTFlags.bytewidth, 1, number_types.UOffsetTFlags.bytewidth)
    b.PrependUOffsetTRelative(s)
    return b.EndVector()


@functools.lru_cache(maxsize=None)
def layout(kind: str) -> Layout:
    """The fields of table type `kind` ("Model", "Tensor", "FullyConnectedOptions"...)."""
    module = _module(kind)
    cls = getattr(module, kind)
    _, (n_slots,) = _recorded(getattr(module, kind + "Start"))
    prefix = kind + "Add"
    found: dict[str, Field] = {}
    for fn_name in sorted(n for n in dir(module) if n.startswith(prefix)):
        accessor = fn_name[len(prefix):]
        method, args = _recorded(getattr(module, fn_name), 0)
        slot = int(args[0])
        name = snake_case(accessor)
        if method != "PrependUOffsetTRelativeSlot":
            scalar = method[len("Prepend"):-len("Slot")]
            if scalar not in _SCALAR_TYPES:
                raise ModelError(f"{kind}.{name}: unexpected field type ({method})")
            default = bool(args[2]) if scalar == "Bool" else args[2]
            found[accessor] = Field(name, accessor, slot, SCALAR, getattr(number_types, scalar + "Flags"), default)
            continue
        vector_start = getattr(module, f"{kind}Start{accessor}Vector", None)
        if vector_start is not None and hasattr(cls, accessor + "AsNumpy"):
            _, (elem_size, _, _) = _recorded(vector_start, 1)
            one = np.zeros(1, f"u{elem_size}")
            obj = _probe(module, kind, accessor, lambda b, one=one: b.CreateNumpyVector(one))
            dtype = getattr(obj, accessor + "AsNumpy")().dtype
            flags = next(getattr(number_types, t + "Flags") for t in _SCALAR_TYPES
                         if number_types.to_numpy_type(getattr(number_types, t + "Flags")) == dtype)
            found[accessor] = Field(name, accessor, slot, VECTOR, flags)
        elif vector_start is not None:
            first = getattr(_probe(module, kind, accessor, _one_string_vector), accessor)(0)
            found[accessor] = (Field(name, accessor, slot, STRINGS) if isinstance(first, bytes) else
                               Field(name, accessor, slot, TABLES, table=type(first).__name__))
        elif hasattr(module, f"{prefix}{accessor}Type"):
            if (kind, accessor) not in UNION_ENUMS:
                raise ModelError(f"{kind}.{name} is a union this module does not know the enum of")
            found[accessor] = Field(name, accessor, slot, UNION, union=UNION_ENUMS[(kind, accessor)])
        else:
            value = getattr(_probe(module, kind, accessor, lambda b: b.CreateString("probe")), accessor)()
            found[accessor] = (Field(name, accessor, slot, STRING) if isinstance(value, bytes) else
                               Field(name, accessor, slot, TABLE, table=type(value).__name__))
    for accessor, f in list(found.items()):
        if f.kind == UNION:
            # the union's type is a field of its own in the file; here it follows from the member's kind
            type_field = found.pop(accessor + "Type")
            found[accessor] = Field(f.name, accessor, f.slot, UNION, type_field.flags, union=f.union,
                                    type_slot=type_field.slot)
    fields = tuple(sorted(found.values(), key=lambda f: f.slot))
    return Layout(kind, int(n_slots), fields, {f.name: f for f in fields})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b)))
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


class Table:
    """One table of a .tflite flatbuffer, of any type. `kind` names the type ("Model", "Tensor",
    "ReshapeOptions"...); each field is an attribute under its schema name: a scalar (its default
    when absent), a str, a 1-D numpy array of the field's type (vectors of numbers; a list or bytes
    assigned is converted, and refused if it does not fit), a Table, a list of Tables, or None
    for an absent offset field. A union field (`builtin_options`, `details`) holds the member Table;
    its type is that table's kind. Setting a field the type does not have raises ModelError, so a
    misspelt name cannot vanish from the written file."""

    def __init__(self, kind: str, **values: Any):
        lay = layout(kind)
        object.__setattr__(self, "kind", kind)
        for f in lay.fields:
            object.__setattr__(self, f.name, f.default if f.kind == SCALAR else None)
        for name, value in values.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        f = layout(self.kind).by_name.get(name)
        if f is None:
            known = ", ".join(layout(self.kind).by_name)
            raise ModelError(f"a {self.kind} table has no field '{name}' (it has: {known})")
        if f.kind == VECTOR and value is not None:
            value = _vector(self.kind, f, value)  # a list becomes the field's array; what does not fit fails here
        object.__setattr__(self, name, value)

    def fields(self) -> dict[str, Any]:
        """Every field by name, in slot order."""
        return {f.name: getattr(self, f.name) for f in layout(self.kind).fields}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        return other.kind == self.kind and all(_same(a, b) for a, b in zip(self.fields().values(), other.fields().values()))

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        lay = layout(self.kind)
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in lay.fields
                 if not _same(getattr(self, f.name), f.default if f.kind == SCALAR else None)]
        return f"Table({self.kind!r}{''.join(', ' + s for s in shown)})"


# -- reading ----------------------------------------------------------------------------------------
def read_table(buf: bytes, pos: int, kind: str) -> Table:
    """The `kind` table at absolute position `pos` of flatbuffer `buf`, with everything below it."""
    lay = layout(kind)
    tab = FlatTable(buf, pos)
    _refuse_unknown_fields(buf, pos, tab, lay)
    obj = Table(kind)
    for f in lay.fields:
        o = tab.Offset(4 + 2 * f.slot)  # vtable entries 0 and 1 hold the vtable's and the table's size
        if f.kind == SCALAR:
            value = tab.Get(f.flags, pos + o) if o else f.default
        elif not o:
            value = None
        elif f.kind == STRING:
            value = tab.String(pos + o).decode("utf-8", "surrogateescape")
        elif f.kind == TABLE:
            value = read_table(buf, tab.Indirect(pos + o), f.table)
        elif f.kind == UNION:
            t = tab.Offset(4 + 2 * f.type_slot)
            code = tab.Get(f.flags, pos + t) if t else 0
            member = enum_members(f.union).get(code)
            if member is None:
                raise ModelError(f"{kind}.{f.name} holds union member {code}, which {f.union} of the tflite "
                                 f"schema bindings ({_version()}) does not know")
            value = None if code == 0 else read_table(buf, tab.Indirect(pos + o), member)
        elif f.kind == VECTOR:
            value = np.array(tab.GetVectorAsNumpy(f.flags, o), dtype=f.dtype)
        else:
            start, n = tab.Vector(o), tab.VectorLen(o)
            items = [start + number_types.UOffsetTFlags.bytewidth * j for j in range(n)]
            value = ([tab.String(x).decode("utf-8", "surrogateescape") for x in items] if f.kind == STRINGS else
                     [read_table(buf, tab.Indirect(x), f.table) for x in items])
        object.__setattr__(obj, f.name, value)
    return obj


def _refuse_unknown_fields(buf: bytes, pos: int, tab: FlatTable, lay: Layout) -> None:
    """Slots past the schema's last field are fields of a newer schema. (Slots without an accessor
    below that are deprecated fields, which runtimes ignore; they are left out when writing.)"""
    vtable = pos - encode.Get(packer.soffset, buf, pos)
    in_file = (encode.Get(packer.voffset, buf, vtable) - 4) // 2
    unknown = [s for s in range(lay.n_slots, in_file) if tab.Offset(4 + 2 * s)]
    if unknown:
        raise ModelError(f"a {lay.kind} table sets field slot(s) {unknown}, which the tflite schema bindings "
                         f"({_version()}) do not know: rewriting the model would drop them; upgrade the tflite "
                         "package")


# -- writing ----------------------------------------------------------------------------------------
def _vector(kind: str, f: Field, value: Any) -> np.ndarray:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = np.frombuffer(bytes(value), np.uint8)
    arr = np.asarray(value)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim > 1 else arr.reshape(1)
    want = f.dtype
    if arr.dtype != want:
        conv = arr.astype(want)
        # floats are rounded to the field's precision (a scale given as a Python float); integers must fit
        if want.kind in "biu" and not np.array_equal(conv, arr):
            raise ModelError(f"{kind}.{f.name}: {arr[:8].tolist()} does not fit a vector of {want}")
        arr = conv
    return np.ascontiguousarray(arr)


def write_table(b: flatbuffers.Builder, obj: Table) -> int:
    """Write `obj` and everything below it into builder `b`; its offset there."""
    kind = obj.kind
    lay, module = layout(kind), _module(kind)
    offsets: dict[str, int] = {}
    members: dict[str, int] = {}
    # flatbuffers cannot nest: strings, vectors and child tables go in before the table itself
    for f in lay.fields:
        value = getattr(obj, f.name)
        if f.kind == SCALAR or value is None:
            continue
        if f.kind == STRING:
            offsets[f.name] = b.CreateString(value, errors="surrogateescape")
        elif f.kind in (TABLE, UNION):
            if not isinstance(value, Table):
                raise ModelError(f"{kind}.{f.name} must hold a Table, not {type(value).__name__}")
            if f.kind == TABLE and value.kind != f.table:
                raise ModelError(f"{kind}.{f.name} holds a {value.kind} table, not a {f.table}")
            if f.kind == UNION:
                codes = {name: code for code, name in enum_members(f.union).items()}
                if value.kind not in codes:
                    raise ModelError(f"{kind}.{f.name} cannot hold a {value.kind} table (not in {f.union})")
                members[f.name] = codes[value.kind]
            offsets[f.name] = write_table(b, value)
        elif f.kind == VECTOR:
            arr = _vector(kind, f, value)
            align = FORCE_ALIGN.get((kind, f.name))
            if align:
                b.Prep(align, arr.nbytes)  # pads so the data, written next, ends (and starts) aligned
            offsets[f.name] = b.CreateNumpyVector(arr)
        else:
            if f.kind == TABLES and any(not isinstance(v, Table) or v.kind != f.table for v in value):
                raise ModelError(f"{kind}.{f.name} must be a list of {f.table} tables")
            items = [write_table(b, v) if f.kind == TABLES else b.CreateString(v, errors="surrogateescape")
                     for v in value]
            width = number_types.UOffsetTFlags.bytewidth
            b.StartVector(width, len(items), width)
            for item in reversed(items):
                b.PrependUOffsetTRelative(item)
            offsets[f.name] = b.EndVector()
    getattr(module, kind + "Start")(b)
    for f in lay.fields:
        add = getattr(module, f"{kind}Add{f.accessor}")
        if f.kind == SCALAR:
            value = getattr(obj, f.name)
            try:
                add(b, value)
            except (struct.error, TypeError, OverflowError) as exc:  # the value does not fit the field's type
                raise ModelError(f"{kind}.{f.name} = {value!r} does not fit the field ({exc})") from None
        elif f.name in offsets:
            add(b, offsets[f.name])
            if f.kind == UNION:
                getattr(module, f"{kind}Add{f.accessor}Type")(b, members[f.name])
    return getattr(module, kind + "End")(b)
