"""Flavours: whose arithmetic a loaded model reproduces.

A flavour is a table opcode -> kernel class plus a `Policy` for what is decided for the whole graph
rather than per op. A flavour may have a parent whose table it falls back to, so a flavour that
differs from its parent on a few ops lists only those (TFLite Micro differs from LiteRT on about ten).
Kernels never ask which flavour they are in: where two interpreters compute an op differently,
there are two kernel classes, each registered in its flavour's table.

Built in: "tflite" (LiteRT's builtin reference kernels), "tflm" (TFLite Micro's reference kernels,
parent "tflite") and "tflite-runtime" (what the frozen tflite-runtime 2.14 interpreter computes by
default on x86-64: its builtin optimized kernels, parent "tflite"). `Flavor.derive` makes a new one
from an existing one, e.g. in a test:

    mine = edgelstm.flavor("tflm").derive("mine", kernels={"FULLY_CONNECTED": MyFullyConnected})
    edgelstm.load(path, flavor=mine)
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional, Union

from ..errors import ModelError
from ..tflite_reader import Graph, Operator

# A kernel class: a subclass of ops/base.py's OpKernel (which imports this module, hence not named).
KernelClass = type


@dataclass(frozen=True)
class Policy:
    """Graph-wide behaviour of the interpreter a flavour mirrors."""

    #: human name of that interpreter, for messages
    runtime: str
    #: name of the edgelstm.references adapter that runs it (what `verify` checks against by default)
    reference: str
    #: every tensor runs at the size stored in the flatbuffer (no dynamic shapes; a dynamic axis is 1)
    static_shapes: bool = False
    #: whether variable tensors (the LSTM's h and c) keep their values from one invoke to the next
    state_persists: bool = True


class Flavor:
    """A named kernel table with a parent to fall back to, and a policy."""

    def __init__(self, name: str, policy: Policy, parent: Optional["Flavor"] = None, description: str = ""):
        self.name = name
        self.policy = policy
        self.parent = parent
        self.description = description
        # None marks an op the interpreter has no kernel for, even if the parent has one
        self._table: dict[str, Optional[KernelClass]] = {}

    def __repr__(self) -> str:
        parent = f" parent={self.parent.name}" if self.parent else ""
        return f"<edgelstm.Flavor {self.name}{parent}>"

    # -- building the table --------------------------------------------------------------------
    def register(self, *opcodes: str) -> Callable[[KernelClass], KernelClass]:
        """Class decorator: the class is this flavour's kernel for these opcodes."""
        def deco(cls: KernelClass) -> KernelClass:
            for code in opcodes:
                self._table[code] = cls
            return cls
        return deco

    def lacks(self, *opcodes: str) -> None:
        """The interpreter has no kernel for these ops: models using them are refused."""
        for code in opcodes:
            self._table[code] = None

    def derive(self, name: str, *, kernels: Optional[Mapping[str, Optional[KernelClass]]] = None,
               policy: Optional[Policy] = None, description: str = "") -> "Flavor":
        """A child flavour: this one's table with `kernels` overriding (None = refuse the op)."""
        child = Flavor(name, policy or self.policy, parent=self, description=description)
        for code, cls in (kernels or {}).items():
            child._table[code] = cls
        return child

    # -- using it ----------------------------------------------------------------------------------
    def kernel_class(self, opcode: str) -> Optional[KernelClass]:
        """The class that runs `opcode` here; None if the interpreter lacks it or nobody has one."""
        return self._entry(opcode)[1]

    def _entry(self, opcode: str) -> tuple[bool, Optional[KernelClass]]:
        """(whether this flavour or a parent lists the op, its class there: None = refused)."""
        fl: Optional[Flavor] = self
        while fl is not None:
            if opcode in fl._table:
                return True, fl._table[opcode]
            fl = fl.parent
        return False, None

    def own_kernels(self) -> dict[str, Optional[KernelClass]]:
        """This flavour's own table, without what it inherits (None: an op it refuses)."""
        return dict(self._table)

    def opcodes(self) -> list[str]:
        """Every opcode this flavour runs."""
        codes: set[str] = set()
        chain = []
        fl: Optional[Flavor] = self
        while fl is not None:
            chain.append(fl)
            fl = fl.parent
        for f in reversed(chain):  # the child's table last, so its refusals win
            for code, cls in f._table.items():
                (codes.add if cls is not None else codes.discard)(code)
        return sorted(codes)

    def build(self, op: Operator, graph: Graph) -> Any:
        """The prepared kernel of one operator (raises ModelError naming the op)."""
        listed, cls = self._entry(op.opcode)
        if cls is None:
            if listed:
                raise ModelError(f"{op.describe()}: {self.policy.runtime} has no kernel for {op.opcode}, so the "
                                 f"{self.name} flavor cannot run this model")
            raise ModelError(f"{op.describe()}: edgelstm has no kernel for {op.opcode}; supported ops are "
                             + ", ".join(self.opcodes()))
        return cls(op, graph)

    def prepare_graph(self, graph: Graph) -> Graph:
        """The graph as this flavour's interpreter sees it. Without dynamic shapes every tensor has
        the size stored in the flatbuffer (the converter stores 1 for a dynamic dimension): shape
        signatures are pinned to it, inputs must then have exactly that shape, and a graph whose
        stored sizes do not fit together is refused by the kernels' shape checks."""
        if not self.policy.static_shapes or all(t.shape_signature == t.shape for t in graph.tensors):
            return graph
        return replace(graph, tensors=[replace(t, shape_signature=t.shape) for t in graph.tensors])


# -- the built-in flavours -------------------------------------------------------------------------
TFLITE = Flavor("tflite", Policy(runtime="LiteRT", reference="litert"),
                description="LiteRT / TFLite builtin reference kernels (BUILTIN_REF)")
TFLM = Flavor("tflm", Policy(runtime="TFLite Micro", reference="tflm", static_shapes=True), parent=TFLITE,
              description="TFLite Micro reference kernels")
# Ops edgelstm runs for LiteRT that TFLite Micro's op resolver has no kernel for.
TFLM.lacks("REDUCE_PROD", "RELU_N1_TO_1", "RELU_0_TO_1")
# `tflite_runtime.interpreter.Interpreter(model_path)` with its default settings: the builtin
# optimized kernels (of an int8 model, the XNNPACK delegate it applies by default takes only
# TRANSPOSE, which moves bytes). They differ from the reference kernels in FULLY_CONNECTED and
# CONV_2D (ruy's requantization), SOFTMAX (a float32 table of exps), 4-D MEAN over height and
# width, and float32 -> int8 QUANTIZE (divides in double); the kernels registered for this flavour
# say how. Measured on x86-64; ruy rounds differently on arm64.
TFLITE_RUNTIME = Flavor("tflite-runtime", Policy(runtime="tflite-runtime 2.14", reference="tflite-runtime"),
                        parent=TFLITE, description="tflite-runtime 2.14's default interpreter (builtin "
                        "optimized kernels, x86-64)")

_BUILTIN = (TFLITE, TFLM, TFLITE_RUNTIME)
_FLAVORS: dict[str, Flavor] = {f.name: f for f in _BUILTIN}


def register_flavor(flavor: Flavor) -> Flavor:
    """Make a flavour loadable by name (`edgelstm.load(path, flavor=name)`, the CLI's --flavor)."""
    if flavor.name in _FLAVORS and _FLAVORS[flavor.name] is not flavor:
        raise ValueError(f"a different flavor named {flavor.name!r} is already registered")
    _FLAVORS[flavor.name] = flavor
    return flavor


def unregister_flavor(name: str) -> None:
    """Forget a registered flavour (the built-in ones stay)."""
    if name in (f.name for f in _BUILTIN):
        raise ValueError(f"the built-in flavor {name!r} cannot be unregistered")
    _FLAVORS.pop(name, None)


def flavors() -> list[Flavor]:
    """Every registered flavour, built-in ones first."""
    return list(_FLAVORS.values())


def get_flavor(flavor: Union[str, Flavor]) -> Flavor:
    """A flavour by name (or the flavour itself); ModelError naming the choices otherwise."""
    if isinstance(flavor, Flavor):
        return flavor
    found = _FLAVORS.get(flavor) if isinstance(flavor, str) else None
    if found is None:
        raise ModelError(f"unknown flavor {flavor!r}; available: {', '.join(_FLAVORS)}")
    return found
