"""Capturing what native interpreter code prints straight to the process's file descriptors.

TFLite Micro's MicroPrintf (and the C++ side of other interpreters) writes to descriptors 1 and 2,
so Python-level redirection (contextlib.redirect_stdout) does not catch it. `quiet_fds` swaps the
descriptors themselves; the TFLM adapter and the firmware kit's arena measurement use it.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def quiet_fds(sink: list[str]) -> Iterator[None]:
    """Redirect the C-level stdout and stderr into a temporary file; its text is appended to `sink`
    when the block ends (also when it raises, so an error message can quote it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))
