"""`edgelstm firmware`: what a model becomes on a microcontroller, proven bit-exact in an emulated
Cortex-M.

From the .tflite alone it writes, under one output directory:

- tflm/      the TFLite Micro deployment kit: the flatbuffer as an aligned const C array, the op
             resolver with exactly the model's ops, the tensor arena measured by TFLite Micro itself;
- lib/       a standalone C99 int8 inference library generated for the model (codegen/): the
             C kernels of c/ plus model.c with the weights and every prepared parameter, no malloc,
             no floating point, one static arena; model_run (whole sequence) and model_step
             (one timestep, state kept);
- test/      a test program that runs the inputs and prints the outputs;
- build/     the host build and the Cortex-M ELF (build.py);
- outputs.npy, report.json.

It then proves the library: the host build, the target build run in qemu-system-arm on the
matching board (emulate.py), edgelstm's tflm flavour and the real TFLite Micro interpreter must
all give the same outputs, and model_step must reproduce model_run. The report adds flash and RAM
from the ELF, instructions counted in the emulator, and a latency model (report.py).

pipeline.py holds `firmware()` itself, the steps above in order.
"""
from .build import TARGETS
from .pipeline import DEFAULT_TARGET, default_inputs, firmware

__all__ = ["DEFAULT_TARGET", "TARGETS", "default_inputs", "firmware"]
