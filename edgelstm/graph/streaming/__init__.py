"""Single-step (streaming) variant of a converted LSTM model, for sample-by-sample inference.

`streaming_model` rewrites the full-sequence .tflite itself: same weights, same quantization
parameters, same operators; only the time dimension becomes 1. A separately converted T=1 Keras
model would be calibrated on other activations and could never match the full model bit for bit.

The LSTM ops keep h and c in variable tensors, which every runtime carries across invokes (LiteRT
until reset_all_variables(), TFLite Micro until reset(), edgelstm with `run(x, reset=False)`). So
invoke k, given sample k, computes exactly what the full model computes at timestep k, and returns
what the full model would output if the sequence ended there: the head applied to h_k after a
last-timestep slice, the step's own output for sequence outputs.

How: the model input's time axis is followed through the graph (plan.py drives it, with one shape
rule per opcode: rules.py for computing ops, movement.py for data movement, slices.py, and
shape_math.py for the shape arithmetic of a dynamic T). Every tensor carrying it gets that
dimension set to 1 (shape and shape_signature); the constants that encode T are rewritten (RESHAPE
new shapes, STRIDED_SLICE/SLICE bounds that take the last timestep or the whole sequence); a
RESHAPE shape the converter computes at run time for a dynamic T (SHAPE, GATHER, REDUCE_PROD, PACK)
is folded into a constant and its shape arithmetic dropped (rewrite.py writes the result). An op
that needs other timesteps than the current one (the backward direction of a bidirectional layer,
pooling, a mean or a convolution over time with a window above 1, a slice of other timesteps, a
Flatten over time) is refused with a `ConversionError` naming it.

No TensorFlow and no ai-edge-litert: the graph layer's writer needs only the `tflite` package.
"""
from .plan import plan_streaming
from .rewrite import render, streaming_model, summarize
from .timeaxis import StreamPlan, TimeDim, time_axis

__all__ = ["streaming_model", "plan_streaming", "summarize", "render", "StreamPlan", "TimeDim", "time_axis"]
