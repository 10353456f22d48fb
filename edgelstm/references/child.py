"""The child process that hosts one reference interpreter for `IsolatedReference`.

`IsolatedReference` starts it (`main()`; `python -m edgelstm.references.child` is the same). Requests
arrive pickled on stdin, one reply per request leaves pickled on the original stdout; the C++
interpreters print to file descriptors 1 and 2, so descriptor 1 is pointed at stderr first and
cannot corrupt the replies. Requests:

- ("load", factory_path, model_bytes, preserve_all_tensors, sys_path) -> ("ok", (name, version))
- ("run", inputs, reset) -> ("ok", outputs)
- ("tensors",) -> ("ok", {index: array})

A request that raises gets ("error", exception class name, message); the process stays usable. It
exits at the end of its input. `sys_path` is the parent's, so that a factory the parent can import
(a test module, say) imports here too.
"""
from __future__ import annotations

import os
import pickle
import sys
import threading
import time
from typing import Any, BinaryIO, Optional


def _adopt_path(parent_path: list[str]) -> None:
    known = set(sys.path)
    sys.path[:0] = [p for p in parent_path if p not in known]


def _handle(request: tuple, state: dict) -> tuple:
    from .base import import_object

    kind = request[0]
    if kind == "load":
        _, factory, model, preserve, parent_path = request
        state["ref"] = None  # release the previous model's interpreter before building the next
        _adopt_path(parent_path)
        ref = import_object(factory)(model, preserve_all_tensors=preserve)
        state["ref"] = ref
        return "ok", (ref.name, ref.version)
    ref: Optional[Any] = state.get("ref")
    if ref is None:
        raise RuntimeError(f"{kind!r} before a model was loaded")
    if kind == "run":
        return "ok", ref.run(request[1], reset=request[2])
    if kind == "tensors":
        return "ok", ref.tensors()
    raise RuntimeError(f"unknown request {kind!r}")


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until the input ends."""
    state: dict = {}
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        try:
            # pickled whole before writing, so that a reply that cannot be pickled leaves no half message
            reply = pickle.dumps(_handle(request, state), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # the reference's own error, reported to the parent as text
            reply = pickle.dumps(("error", type(exc).__name__, str(exc)), protocol=pickle.HIGHEST_PROTOCOL)
        replies.write(reply)
        replies.flush()


def _exit_with_parent(parent: int) -> None:
    """End this process once its parent is gone, even while a request hangs (the parent would have
    killed it on its time limit, had it lived), so that no orphaned interpreter spins forever."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def main() -> None:
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
