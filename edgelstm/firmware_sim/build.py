"""Writing the generated sources to disk and compiling them: host gcc for the fast bit-exact check,
arm-none-eabi-gcc (Debian's gcc-arm-none-eabi + libnewlib-arm-none-eabi) for the Cortex-M target,
with our own start-up code (c/target/cortexm.c) and a linker script per emulated board.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import EdgeLSTMError
from .codegen import KERNEL_SOURCES, GeneratedLibrary

C_DIR = Path(__file__).parent / "c"
APT_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
CALIB_SHORT, CALIB_LONG = 1000, 3000  # iterations of the two-instruction calibration loop
# Warnings are errors: the kernels and the generated code must compile cleanly everywhere.
COMMON_CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-Wno-unused-function"]


@dataclass(frozen=True)
class Target:
    name: str
    machine: str  # qemu-system-arm -M
    cpu_flags: tuple[str, ...]
    flash: tuple[int, int]  # origin, length
    ram: tuple[int, int]
    board: str  # what QEMU emulates


TARGETS = {
    # QEMU's micro:bit is a Cortex-M0 (nRF51); ARMv6-M code for the M0+ runs on it unchanged.
    "cortex-m0plus": Target("cortex-m0plus", "microbit", ("-mcpu=cortex-m0plus",), (0x00000000, 256 << 10),
                            (0x20000000, 16 << 10), "BBC micro:bit (nRF51, Cortex-M0): 256 KB flash, 16 KB RAM"),
    "cortex-m3": Target("cortex-m3", "mps2-an385", ("-mcpu=cortex-m3",), (0x00000000, 4 << 20),
                        (0x20000000, 4 << 20), "MPS2 AN385 (Cortex-M3)"),
    "cortex-m4": Target("cortex-m4", "mps2-an386", ("-mcpu=cortex-m4", "-mfloat-abi=soft"), (0x00000000, 4 << 20),
                        (0x20000000, 4 << 20), "MPS2 AN386 (Cortex-M4)"),
    "cortex-m7": Target("cortex-m7", "mps2-an500", ("-mcpu=cortex-m7", "-mfloat-abi=soft"), (0x00000000, 4 << 20),
                        (0x20000000, 4 << 20), "MPS2 AN500 (Cortex-M7)"),
    # AN505 boots in the secure state from 0x10000000 (the secure alias of SSRAM1)
    "cortex-m33": Target("cortex-m33", "mps2-an505", ("-mcpu=cortex-m33", "-mfloat-abi=soft"), (0x10000000, 4 << 20),
                         (0x38000000, 2 << 20), "MPS2 AN505 (Cortex-M33, secure state)"),
}

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
STACK_BYTES = 8 << 10
CACHE_DIR = Path(os.environ.get("EDGELSTM_FIRMWARE_CACHE", Path.home() / ".cache" / "edgelstm" / "firmware"))  # reserved at the top of RAM (less on a board whose RAM is smaller)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EdgeLSTMError(f"{name} is not installed; on Debian/Ubuntu: apt-get install -y {APT_PACKAGES}")
    return path


def _run(cmd: Sequence[str], cwd: Optional[Path] = None, timeout: float = 600) -> str:
    res = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise EdgeLSTMError(f"{Path(cmd[0]).name} failed ({res.returncode}):\n{res.stderr.strip()[-4000:]}")
    return res.stdout


# -- sources ----------------------------------------------------------------------------------------------
def write_library(lib: GeneratedLibrary, out: Path) -> Path:
    """DIR/lib: the kernels (copied from the package) plus the generated model.c / model.h."""
    d = out / "lib"
    d.mkdir(parents=True, exist_ok=True)
    for f in sorted(C_DIR.glob("el_*.[ch]")):
        if f.name != "el_platform.h":
            shutil.copyfile(f, d / f.name)
    for name, text in lib.files.items():
        (d / name).write_text(text)
    return d


def write_test_program(lib: GeneratedLibrary, inputs: list[list[np.ndarray]], out: Path) -> Path:
    """DIR/test: a main that runs every sample (one int8 array per model input) through model_run
    (fresh state each) and, if the model has one, model_step timestep by timestep, and prints the
    outputs (all of a call's outputs on one line); each call sits between the two markers the
    emulator counts instructions at."""
    d = out / "test"
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(C_DIR / "el_platform.h", d / "el_platform.h")
    for f in ("host.c", "cortexm.c", "calib.S"):
        shutil.copyfile(C_DIR / "target" / f, d / f)
    n = len(inputs)
    n_in, n_out = len(lib.inputs), len(lib.outputs)
    data = ["#include \"model.h\"\n#include \"test_data.h\"\n"]
    decls = []
    for j in range(n_in):
        rows = ",\n".join("    {" + ", ".join(str(int(v)) for v in x[j].reshape(-1)) + "}" for x in inputs)
        data.append(f"const int8_t test_input{j}[TEST_SAMPLES][MODEL_INPUT{j}_SIZE] = {{\n{rows}\n}};\n")
        decls.append(f"extern const int8_t test_input{j}[TEST_SAMPLES][MODEL_INPUT{j}_SIZE];")
    (d / "test_data.c").write_text("\n".join(data))
    (d / "test_data.h").write_text(
        "#ifndef TEST_DATA_H\n#define TEST_DATA_H\n#include <stdint.h>\n#include \"model.h\"\n"
        f"#define TEST_SAMPLES {n}\n" + "\n".join(decls) + "\n#endif\n")
    ys = "\n".join(f"    static int8_t y{j}[MODEL_OUTPUT{j}_SIZE];" for j in range(n_out))
    run_args = ", ".join([f"test_input{j}[k]" for j in range(n_in)] + [f"y{j}" for j in range(n_out)])
    run_print = " ".join(f"put_ints(y{j}, MODEL_OUTPUT{j}_SIZE);" for j in range(n_out))
    st = lib.step
    gather = steps = ""
    if st.available:
        shape = lib.inputs[0].shape
        a = st.input_time_axis
        outer = int(np.prod(shape[:a], dtype=np.int64))
        inner = int(np.prod(shape[a + 1:], dtype=np.int64))
        gather = f"""
/* the input at one time index: [outer, T, inner] -> [outer, 1, inner] */
static void take_step(const int8_t *x, int32_t t, int8_t *xt) {{
    for (int32_t o = 0; o < {outer}; o++)
        for (int32_t i = 0; i < {inner}; i++) xt[o * {inner} + i] = x[(o * {st.time_steps} + t) * {inner} + i];
}}
"""
        yts = "\n".join(f"    static int8_t yt{j}[MODEL_STEP_OUTPUT{j}_SIZE];" for j in range(n_out))
        step_args = ", ".join(["xt"] + [f"yt{j}" for j in range(n_out)])
        step_print = " ".join(f"put_ints(yt{j}, MODEL_STEP_OUTPUT{j}_SIZE);" for j in range(n_out))
        steps = f"""
    static int8_t xt[MODEL_STEP_INPUT_SIZE];
{yts}
    for (int k = 0; k < TEST_SAMPLES; k++) {{
        model_reset();
        for (int32_t t = 0; t < MODEL_TIME_STEPS; t++) {{
            take_step(test_input0[k], t, xt);
            el_mark_begin();
            model_step({step_args});
            el_mark_end();
            put("step "); put_int(k); put(" "); put_int(t); {step_print} put("\\n");
        }}
    }}"""
    (d / "test_main.c").write_text(f"""/* Generated by `edgelstm firmware`: runs the given inputs and prints the outputs. */
#include <stdint.h>
#include "model.h"
#include "test_data.h"
#include "el_platform.h"

#define CALIB_SHORT {CALIB_SHORT}
#define CALIB_LONG {CALIB_LONG}

static char line[200];
static int len;

static void flush(void) {{ line[len] = 0; el_print(line); len = 0; }}
static void put(const char *s) {{ while (*s) {{ if (len >= (int)sizeof line - 1) flush(); line[len++] = *s++; }} }}
static void put_int(int32_t v) {{
    char b[12];
    int i = 11;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    b[i] = 0;
    do {{ b[--i] = (char)('0' + u % 10u); u /= 10u; }} while (u);
    if (v < 0) b[--i] = '-';
    put(b + i);
}}
static void put_ints(const int8_t *v, int32_t n) {{ for (int32_t i = 0; i < n; i++) {{ put(" "); put_int(v[i]); }} }}

__attribute__((noinline)) static void calibrate(uint32_t n) {{
    el_mark_begin();
    el_calib_loop(n);
    el_mark_end();
}}
{gather}
int main(void) {{
{ys}
    put("EL-BEGIN\\n");
    /* instruction-counter checks: an empty window (the markers' own cost), then the same code
     * path looping 1000 and 3000 times: the two counts must differ by exactly 2 x 2000 */
    el_mark_begin();
    el_mark_end();
    calibrate(CALIB_SHORT);
    calibrate(CALIB_LONG);
    for (int k = 0; k < TEST_SAMPLES; k++) {{
        model_reset();
        el_mark_begin();
        model_run({run_args});
        el_mark_end();
        put("run "); put_int(k); {run_print} put("\\n");
    }}{steps}
    put("stack "); put_int((int32_t)el_stack_used()); put("\\n");
    put("EL-END\\n");
    flush();
    return 0;
}}
""")
    return d


# -- compiling ----------------------------------------------------------------------------------------------
def _sources(out: Path) -> list[Path]:
    lib = out / "lib"
    return [lib / s for s in KERNEL_SOURCES] + [lib / "model.c", out / "test" / "test_data.c", out / "test" / "test_main.c"]


def _compile(cc: str, flags: list[str], out: Path, sources: list[Path], objdir: Path) -> list[Path]:
    """Compile each source to an object, in parallel. The kernel sources are the same for every
    model, so their objects are cached (keyed by compiler, flags and every header's contents)."""
    inc = ["-I", str(out / "lib"), "-I", str(out / "test")]
    headers = b"".join(p.read_bytes() for p in sorted((out / "lib").glob("el_*.h")))

    def one(src: Path) -> Path:
        obj = objdir / (src.stem + ".o")
        cached = None
        if src.name in KERNEL_SOURCES:
            key = hashlib.sha256(b"\0".join([cc.encode(), " ".join(flags).encode(), headers, src.read_bytes()]))
            cached = CACHE_DIR / f"{src.stem}-{key.hexdigest()[:20]}.o"
            if cached.exists():
                shutil.copyfile(cached, obj)
                return obj
        _run([cc, *flags, *inc, "-c", str(src), "-o", str(obj)])
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(obj, tmp)
            tmp.replace(cached)
        return obj

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        return list(pool.map(one, sources))


def build_host(out: Path) -> Path:
    """The test program for the build machine (gcc); returns the executable."""
    gcc = tool("gcc")
    b = out / "build" / "host"
    b.mkdir(parents=True, exist_ok=True)
    exe = b / "model_test"
    # sanitizers: an out-of-bounds access or an undefined operation (signed overflow, bad shift)
    # in a kernel stops the host run instead of going unnoticed
    flags = [*COMMON_CFLAGS, *SANITIZE]
    objs = _compile(gcc, flags, out, _sources(out) + [out / "test" / "host.c"], b)
    _run([gcc, *flags, *map(str, objs), "-o", str(exe)])
    return exe


def linker_script(t: Target) -> str:
    stack = min(STACK_BYTES, t.ram[1] // 2)
    return f"""/* {t.board} */
MEMORY
{{
    FLASH (rx) : ORIGIN = {t.flash[0]:#010x}, LENGTH = {t.flash[1]:#x}
    RAM (rwx)  : ORIGIN = {t.ram[0]:#010x}, LENGTH = {t.ram[1]:#x}
}}
ENTRY(Reset_Handler)
SECTIONS
{{
    .text :
    {{
        KEEP(*(.isr_vector))
        *(.text*)
        *(.rodata*)
        . = ALIGN(4);
    }} > FLASH
    .ARM.exidx : {{ *(.ARM.exidx*) }} > FLASH
    _sidata = LOADADDR(.data);
    .data :
    {{
        . = ALIGN(4);
        _sdata = .;
        *(.data*)
        . = ALIGN(4);
        _edata = .;
    }} > RAM AT > FLASH
    .bss (NOLOAD) :
    {{
        . = ALIGN(4);
        _sbss = .;
        *(.bss*)
        *(COMMON)
        . = ALIGN(4);
        _ebss = .;
    }} > RAM
    _stack_top = ORIGIN(RAM) + LENGTH(RAM);
    _stack_bottom = _stack_top - {stack:#x};
    ASSERT(_ebss <= _stack_bottom, "the model's RAM does not fit this board next to a {stack}-byte stack")
}}
"""


def target_cflags(t: Target) -> list[str]:
    return [*COMMON_CFLAGS, "-mthumb", *t.cpu_flags, "-ffunction-sections", "-fdata-sections"]


def build_target(out: Path, t: Target) -> tuple[Path, Path]:
    """The test program for a Cortex-M target; returns (ELF, library archive)."""
    gcc, ar = tool("arm-none-eabi-gcc"), tool("arm-none-eabi-ar")
    b = out / "build" / t.name
    b.mkdir(parents=True, exist_ok=True)
    ld = b / "link.ld"
    ld.write_text(linker_script(t))
    flags = target_cflags(t)
    objs = _compile(gcc, flags, out, _sources(out) + [out / "test" / "cortexm.c", out / "test" / "calib.S"], b)
    lib_objs = [o for o in objs if o.stem.startswith("el_") or o.stem == "model"]
    archive = b / "libmodel.a"
    archive.unlink(missing_ok=True)
    _run([ar, "rcs", str(archive), *map(str, lib_objs)])
    elf = b / "model_test.elf"
    _run([gcc, *flags, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections",
          f"-Wl,-T,{ld}", f"-Wl,-Map,{b / 'model_test.map'}", *map(str, objs), "-o", str(elf)])
    return elf, archive


# -- reading the ELF ----------------------------------------------------------------------------------------
def size_of(path: Path) -> dict[str, int]:
    """arm-none-eabi-size (Berkeley format) of an ELF or archive: text, data and bss summed."""
    text = _run([tool("arm-none-eabi-size"), "-B", str(path)])
    totals = {"text": 0, "data": 0, "bss": 0}
    for ln in text.splitlines()[1:]:
        parts = ln.split()
        if len(parts) >= 3 and parts[0].isdigit():
            for key, v in zip(("text", "data", "bss"), parts[:3]):
                totals[key] += int(v)
    return totals


def library_footprint(elf: Path) -> dict:
    """What the library itself (kernels + model.c) occupies in the linked ELF, from the linker map:
    flash = its code and constants (weights, parameters) plus .data initial values, RAM = its
    .data and .bss (the arena and the state). Unused kernels are already gone (--gc-sections)."""
    text = elf.with_suffix(".map").read_text()
    text = text[text.find("Linker script and memory map"):]
    flash = ram = 0
    per_object: dict[str, int] = {}
    for m in re.finditer(r"^ (\.[\w.$]+|COMMON)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$", text, re.M):
        name, size, obj = m.group(1), int(m.group(3), 16), Path(m.group(4)).name
        if not (obj.startswith("el_") or obj == "model.o") or size == 0:
            continue
        if name.startswith((".text", ".rodata")):
            flash += size
        elif name.startswith(".data"):
            flash += size
            ram += size
        elif name.startswith(".bss") or name == "COMMON":
            ram += size
        else:
            continue
        per_object[obj] = per_object.get(obj, 0) + size
    return {"flash_bytes": flash, "ram_static_bytes": ram, "per_object_bytes": per_object}


def symbols(elf: Path) -> dict[str, int]:
    text = _run([tool("arm-none-eabi-nm"), str(elf)])
    out = {}
    for ln in text.splitlines():
        m = re.match(r"([0-9a-fA-F]+)\s+\w\s+(\S+)$", ln)
        if m:
            out[m.group(2)] = int(m.group(1), 16)
    return out


def undefined_float_helpers(path: Path) -> list[str]:
    """Soft-float helpers (__aeabi_f*/d*, ...) the library objects call: must be none."""
    text = _run([tool("arm-none-eabi-nm"), "-u", str(path)])
    return sorted({ln.split()[-1] for ln in text.splitlines()
                   if re.search(r"__aeabi_(f|d|[iu]2[fd]|l2[fd]|ul2[fd])|__(add|sub|mul|div)[sd]f3|__float|__fix", ln)})


def env_has_tools() -> dict[str, bool]:
    return {name: shutil.which(name) is not None for name in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm")}


def debian_install_hint() -> str:
    return f"apt-get install -y {APT_PACKAGES}"


__all__ = ["TARGETS", "Target", "write_library", "write_test_program", "build_host", "build_target", "size_of",
           "symbols", "undefined_float_helpers"]
