"""GATHER: slices of `params` along `axis` picked by an integer index tensor (batch_dims supported).

The output shape is params[:axis] + indices[batch_dims:] + params[axis+1:]. Values are copied, not
requantized (LiteRT gives the output the input's type and never compares quantization).

Indices may be constant or computed. Like LiteRT, every run rejects a negative index, and an index
at or beyond the axis size wherever the reference would read it (it reads none when the rows
before `axis` are empty); the check happens before any copy, so a bad index never reaches memory.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import InputError
from .base import MOVABLE_DTYPES, OpKernel, check_array, register, shape_fits, signatures_agree

_INDEX_DTYPES = (np.int16, np.int32, np.int64)


@register("GATHER")
class Gather(OpKernel):
    def prepare(self) -> None:
        self.expect_counts(2, 1)
        self.x, self.idx, self.y = self.input(0), self.input(1), self.output(0)
        self.expect_dtype(self.x, *MOVABLE_DTYPES)
        self.expect_dtype(self.idx, *_INDEX_DTYPES)
        if self.y.dtype != self.x.dtype:
            raise self.fail(f"output {self.y.describe()} must have the input's type {self.x.type_name}")
        xs, js = self.x.shape_signature, self.idx.shape_signature
        rank, irank = len(xs), len(js)
        axis = int(self.op.options.get("axis", 0))
        batch_dims = int(self.op.options.get("batch_dims", 0))
        self.axis = axis + rank if axis < 0 else axis
        self.batch_dims = batch_dims + irank if batch_dims < 0 else batch_dims
        if not 0 <= self.axis < rank:
            raise self.fail(f"axis {axis} is out of range for a rank-{rank} input")
        if not 0 <= self.batch_dims <= min(self.axis, irank):
            raise self.fail(f"batch_dims {batch_dims} must lie in [0, min(axis, rank of indices)] "
                            f"(axis {self.axis}, indices rank {irank}, input rank {rank})")
        for d in range(self.batch_dims):
            if xs[d] != -1 and js[d] != -1 and xs[d] != js[d]:
                raise self.fail(f"batch dimension {d} differs: {xs[d]} in the input, {js[d]} in the indices")
        sig = self.output_shape(xs, js)
        ys = self.y.shape_signature
        if not signatures_agree(sig, ys):
            raise self.fail(f"gathering gives shape {list(sig)}, but {self.y.describe()} is declared")
        # an index that is wrong whatever the input: refuse the model now rather than on first run
        if self.idx.data is not None:
            bad = self._bad_index(self.idx.data, xs[self.axis] if xs[self.axis] != -1 else None)
            if bad is not None and (bad < 0 or self._reads_rows(xs)):
                raise self.fail(f"constant index {bad} is out of range for axis {self.axis} of {self.x.describe()}")
        self.index_is_model_input = self.idx.index in self.graph.inputs

    def output_shape(self, xs, js) -> tuple[int, ...]:
        return tuple(xs[:self.axis]) + tuple(js[self.batch_dims:]) + tuple(xs[self.axis + 1:])

    def _reads_rows(self, xs) -> bool:
        """Whether the reference visits any index: only when the dims before `axis` are non-empty
        (a dynamic dim counts as non-empty, since the model input must be non-empty)."""
        return all(d != 0 for d in xs[:self.axis])

    @staticmethod
    def _bad_index(idx: np.ndarray, axis_size: Optional[int]) -> Optional[int]:
        """A negative index if any, else one >= axis_size if any, else None."""
        if idx.size == 0:
            return None
        lo = int(idx.min())
        if lo < 0:
            return lo
        hi = int(idx.max())
        if axis_size is not None and hi >= axis_size:
            return hi
        return None

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = check_array(self, inputs[0], self.x)
        idx = check_array(self, inputs[1], self.idx)
        b, axis = self.batch_dims, self.axis
        if x.shape[:b] != idx.shape[:b]:
            raise self.fail(f"batch dimensions differ: input {list(x.shape)}, indices {list(idx.shape)}")
        bad = self._bad_index(idx, x.shape[axis])
        if bad is not None and (bad < 0 or self._reads_rows(x.shape)):
            msg = f"index {bad} is out of range for axis {axis} of size {x.shape[axis]} (input shape {list(x.shape)})"
            if self.index_is_model_input:
                raise InputError(f"{self.op.describe()}: {msg}")
            raise self.fail(msg)
        out_shape = self.output_shape(x.shape, idx.shape)
        if not shape_fits(out_shape, self.y.shape_signature):
            raise self.fail(f"gathering gives shape {list(out_shape)}, but {self.y.describe()} is declared")
        batch = int(np.prod(x.shape[:b], dtype=np.int64))
        outer = int(np.prod(x.shape[b:axis], dtype=np.int64))
        inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
        count = int(np.prod(idx.shape[b:], dtype=np.int64))
        if batch * outer * count * inner == 0:
            return [np.zeros(out_shape, dtype=x.dtype)]
        p = x.reshape(batch, outer, x.shape[axis], inner)
        j = idx.reshape(batch, count).astype(np.intp)
        # advanced indexing copies, so the result never aliases the input
        rows = p[np.arange(batch)[:, None, None], np.arange(outer)[None, :, None], j[:, None, :]]
        return [np.ascontiguousarray(rows).reshape(out_shape)]
