"""`edgelstm doctor`: what this machine has, and one concrete fix for each known-bad combination.

Everything here is read without importing TensorFlow or any interpreter's native code, so the
check is quick and cannot crash on a broken install.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

INTERPRETERS = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime",
                "tensorflow": "tensorflow", "tflite-micro": "tflite_micro"}


def _version(dist: str) -> Optional[str]:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _major_minor(v: Optional[str]) -> tuple[int, int]:
    try:
        parts = (v or "0.0").split(".")
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return 0, 0


def _numba_cache_dir() -> tuple[str, bool]:
    """Where Numba will keep compiled kernels, and whether it can write there."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        path = Path(configured)
    else:  # default: __pycache__ beside the package; Numba falls back to a user dir if read-only
        path = Path(__file__).resolve().parent / "__pycache__"
    probe = path if path.exists() else path.parent
    try:
        probe.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=probe):
            pass
        return str(path), True
    except OSError:
        return str(path), False


def diagnose() -> dict:
    """The facts and the problems found, as one JSON-ready dict."""
    libc, libc_version = platform.libc_ver()
    py = platform.python_version()
    arch = platform.machine()
    numpy_v, numba_v = _version("numpy"), _version("numba")
    cache_dir, cache_ok = _numba_cache_dir()
    interpreters = {}
    for dist, module in INTERPRETERS.items():
        interpreters[dist] = {"version": _version(dist), "importable": importlib.util.find_spec(module) is not None}

    problems: list[dict] = []

    def problem(what: str, fix: str) -> None:
        problems.append({"problem": what, "fix": fix})

    if numba_v is None:
        if arch.startswith("armv7") or arch == "armv6l":
            problem("numba has no wheels for 32-bit ARM (armv7/armv6), so edgelstm's kernels cannot run",
                    "install a 64-bit OS (Raspberry Pi OS 64-bit, aarch64) on a Pi 3/4/5, or build llvmlite and "
                    "numba from source")
        else:
            problem("numba is not installed", "pip install numba")
    if not cache_ok:
        problem(f"Numba's cache directory {cache_dir} is not writable: every process recompiles the kernels "
                "(10 s or more per start)", "export NUMBA_CACHE_DIR=$HOME/.cache/numba")
    tr = interpreters["tflite-runtime"]["version"]
    if tr is not None:
        if _major_minor(numpy_v)[0] >= 2 and _major_minor(tr) <= (2, 14):
            problem(f"tflite-runtime {tr} does not work with numpy {numpy_v} (its Interpreter raises SystemError)",
                    'pip install "numpy<2" (or use ai-edge-litert, which supports numpy 2)')
        if sys.version_info >= (3, 12):
            problem(f"tflite-runtime {tr} has no builds for Python {py}", "pip install ai-edge-litert")
    if not any(i["version"] for k, i in interpreters.items() if k != "tflite-micro"):
        if arch.startswith("armv7"):
            fix = "pip install tflite-runtime (ai-edge-litert has no armv7 wheels), with numpy<2"
        elif sys.version_info >= (3, 12):
            fix = "pip install ai-edge-litert"
        else:
            fix = "pip install ai-edge-litert (or tflite-runtime with numpy<2)"
        problem("no reference interpreter is installed: edgelstm runs, but `edgelstm verify` has nothing to "
                "compare against", fix)

    return {
        "arch": arch,
        "os": f"{platform.system()} {platform.release()}",
        "libc": f"{libc} {libc_version}".strip() or "unknown",
        "python": py,
        "numpy": numpy_v,
        "numba": numba_v,
        "numba_cache_dir": cache_dir,
        "numba_cache_writable": cache_ok,
        "interpreters": interpreters,
        "problems": problems,
    }


def render(report: dict) -> str:
    lines = [f"{'arch':<22}{report['arch']}", f"{'os':<22}{report['os']}", f"{'libc':<22}{report['libc']}",
             f"{'python':<22}{report['python']}", f"{'numpy':<22}{report['numpy'] or 'NOT INSTALLED'}",
             f"{'numba':<22}{report['numba'] or 'NOT INSTALLED'}",
             f"{'numba cache':<22}{report['numba_cache_dir']} "
             f"({'writable' if report['numba_cache_writable'] else 'NOT writable'})"]
    for name, info in report["interpreters"].items():
        lines.append(f"{name:<22}{info['version'] or '-'}")
    if report["problems"]:
        lines.append("")
        for p in report["problems"]:
            lines.append(f"PROBLEM: {p['problem']}")
            lines.append(f"  fix:   {p['fix']}")
    else:
        lines.append("\nno known problem found")
    return "\n".join(lines)
