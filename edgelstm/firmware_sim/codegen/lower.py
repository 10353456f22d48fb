"""Which emitter lowers which kernel: a table keyed by kernel class (a kernel's most specific
class in the table wins, so a flavour's subclass is lowered like its parent), and the C sources
of the op families."""
from __future__ import annotations

from typing import Callable

from ...ops import OpKernel
from ...ops.activations import Int8TableKernel
from ...ops.add import Add
from ...ops.base import MovementKernel
from ...ops.concatenation import Concatenation
from ...ops.conv import ConvKernel
from ...ops.fully_connected import FullyConnected
from ...ops.lstm import TFLMLSTM
from ...ops.mul import Mul
from ...ops.pooling import Pool2D
from ...ops.quantize import Dequantize, Quantize
from ...ops.reduce import Reduce
from ...ops.softmax import Softmax
from . import binary, conv, fc, lstm, movement, pool, reduce, requant, softmax, table
from .emit import Lowering

LowerFn = Callable[[Lowering, OpKernel], None]

#: kernel class -> the function that appends its C call(s) to a Lowering
LOWERERS: dict[type, LowerFn] = {
    TFLMLSTM: lstm.lower_lstm,
    FullyConnected: fc.lower_fully_connected,
    MovementKernel: movement.lower_movement,
    Concatenation: movement.lower_concatenation,
    Int8TableKernel: table.lower_table,
    Add: binary.lower_add,
    Mul: binary.lower_mul,
    ConvKernel: conv.lower_conv,
    Pool2D: pool.lower_pool,
    Reduce: reduce.lower_reduce,
    Softmax: softmax.lower_softmax,
    Quantize: requant.lower_quantize,
    Dequantize: requant.lower_dequantize,
}

#: the C sources every generated library compiles, one per op family (c/)
KERNEL_SOURCES = ("el_lstm.c", "el_fc.c", "el_move.c", "el_table.c", "el_binary.c", "el_conv.c",
                  "el_pool.c", "el_reduce.c", "el_softmax.c", "el_requant.c")
KERNEL_HEADERS = tuple(s[:-2] + ".h" for s in KERNEL_SOURCES)


def lower(ctx: Lowering, kernel: OpKernel) -> None:
    """Appends the kernel's C call(s) to ctx; ModelError naming the op if there is no C kernel."""
    for cls in type(kernel).__mro__:
        emit = LOWERERS.get(cls)
        if emit is not None:
            return emit(ctx, kernel)
    raise kernel.fail(f"the firmware generator has no C kernel for {kernel.op.opcode} yet")
