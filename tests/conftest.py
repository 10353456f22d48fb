import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

_deselected = False
# Below this many missing models, converting them in-process as tests ask costs less than starting
# TensorFlow in worker processes (a few s each), and a run of one module does not convert models
# it never uses.
PREWARM_MIN = 6


def pytest_deselected(items):
    global _deselected
    _deselected = True


def pytest_collection_finish(session):
    """On a cold zoo cache (a fresh CI machine: about 70 models), convert every model the collected
    tests registered before they run, one process per core, instead of one at a time as tests ask.
    Not when tests were deselected (-k, -m), or no collected module uses the zoo: they may need
    only a few models, or none."""
    if session.config.option.collectonly or _deselected or not session.items or "zoo" not in sys.modules:
        return
    import zoo

    todo = zoo.missing()
    workers = min(len(todo), len(os.sched_getaffinity(0)))
    if len(todo) < PREWARM_MIN or workers < 2:
        return
    report = session.config.pluginmanager.get_plugin("terminalreporter")
    start = time.perf_counter()
    left, tail = zoo.build_in_processes(todo, workers)
    if report is not None:
        report.write_line(f"zoo: converted {len(todo) - len(left)} of {len(todo)} models into {zoo.CACHE_DIR} "
                          f"with {workers} processes in {time.perf_counter() - start:.0f} s")
        if left:
            report.write_line(f"zoo: left to the tests that use them: {', '.join(left)}\n{tail}")
