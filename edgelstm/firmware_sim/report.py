"""The firmware report: latency model, published comparison points, and the terminal table.

Latency model. QEMU counts instructions, not cycles, so cycles are estimated from the measured
instruction mix: every instruction class gets the cycle range the core's Technical Reference Manual
gives for it (low = best case, e.g. pipelined neighbouring loads, not-taken branches; high = worst
case, e.g. a taken branch with a full pipeline refill, the slowest multiply form), and
cycles = sum over classes of count x cycles. The estimate is the midpoint of the low and high
totals, the uncertainty the range. Assumed: zero-wait-state memory (code and data in SRAM/TCM or
hitting the flash accelerator/cache), no interrupts. Flash wait states at high clocks, cache
misses (Cortex-M7) and bus contention only add cycles, so the high end is not a hard bound.
"""
from __future__ import annotations

from typing import Optional

# cycles per instruction class (low, high): Arm Cortex-M0+/M3/M4/M7/M33 Technical Reference Manuals,
# instruction timing tables. "multi" is LDM/STM/PUSH/POP (1 + number of registers, returns + refill).
CPI = {
    "cortex-m0plus": {"load": (2, 2), "store": (2, 2), "multi": (3, 7), "mul": (1, 1), "div": (1, 1),
                      "branch": (1, 3), "other": (1, 1)},  # single-cycle multiplier option; no divider
    "cortex-m3": {"load": (1, 2), "store": (1, 2), "multi": (3, 8), "mul": (1, 5), "div": (2, 12),
                  "branch": (1, 4), "other": (1, 1)},
    "cortex-m4": {"load": (1, 2), "store": (1, 2), "multi": (3, 8), "mul": (1, 1), "div": (2, 12),
                  "branch": (1, 4), "other": (1, 1)},
    "cortex-m7": {"load": (0.5, 1), "store": (0.5, 1), "multi": (2, 8), "mul": (0.5, 1), "div": (2, 12),
                  "branch": (0.5, 2), "other": (0.5, 1)},  # dual issue: two simple instructions per cycle
    "cortex-m33": {"load": (1, 2), "store": (1, 2), "multi": (3, 8), "mul": (1, 1), "div": (2, 11),
                   "branch": (1, 3), "other": (1, 1)},
}

# A stated clock per target, with a part that runs at it.
CLOCKS_MHZ = {
    "cortex-m0plus": (48, "Microchip SAMD21"),
    "cortex-m3": (72, "STM32F103"),
    "cortex-m4": (64, "nRF52840 (Arduino Nano 33 BLE Sense)"),
    "cortex-m7": (216, "STM32F746"),
    "cortex-m33": (128, "nRF5340 application core"),
}

# Published LSTM figures on a Cortex-M4, in cycles per multiply-accumulate so that they compare
# across models and clocks. Plumerai's benchmark (Nov 2022) ran the Keras "timeseries weather
# forecasting" example (LSTM(32) over 120 steps of 7 features, then Dense(1): 120 * 4 * 32 * (7 + 32)
# = 599,040 MACs in the LSTM) on an STM32L4R9 Cortex-M4 at 120 MHz.
PUBLISHED = [
    {"what": "TFLite Micro (Sept 2022, with CMSIS-NN where it had kernels), LSTM(32) x 120 steps, Cortex-M4 @ 120 MHz",
     "latency_ms": 27.5, "macs": 599_040, "clock_mhz": 120,
     "source": "https://blog.plumerai.com/2022/11/lstm_inference_engine/"},
    {"what": "Plumerai inference engine, same model and board", "latency_ms": 9.2, "macs": 599_040, "clock_mhz": 120,
     "source": "https://blog.plumerai.com/2022/11/lstm_inference_engine/"},
]
for p in PUBLISHED:
    p["cycles_per_mac"] = round(p["latency_ms"] * 1e-3 * p["clock_mhz"] * 1e6 / p["macs"], 2)


def latency(target: str, mix: dict[str, float], clock_mhz: Optional[float] = None) -> dict:
    """Cycle and latency estimate for one call from its instruction mix (class -> count)."""
    table = CPI[target]
    lo = sum(mix.get(c, 0) * table[c][0] for c in table)
    hi = sum(mix.get(c, 0) * table[c][1] for c in table)
    mhz, part = CLOCKS_MHZ[target]
    if clock_mhz is not None:
        mhz, part = clock_mhz, "as requested"
    mid = (lo + hi) / 2
    to_ms = 1e-3 / mhz  # cycles / (MHz * 1e6) s = cycles * 1e-3 / MHz ms
    return {"clock_mhz": mhz, "clock_part": part, "cycles": round(mid), "cycles_low": round(lo),
            "cycles_high": round(hi), "latency_ms": round(mid * to_ms, 4), "latency_ms_low": round(lo * to_ms, 4),
            "latency_ms_high": round(hi * to_ms, 4),
            "cpi_model": {c: list(v) for c, v in table.items()},
            "assumptions": "zero-wait-state memory (SRAM/TCM or flash accelerator hits), no interrupts"}


def _fmt_bytes(n: Optional[int]) -> str:
    return "n/a" if n is None else f"{n:,} B"


def render(rep: dict) -> str:
    """The terminal table."""
    lines = [f"edgelstm firmware: {rep['model']} -> {rep['out']}"]
    lines.append(f"  outputs match TFLite Micro: {'YES' if rep['outputs_match_tflm'] else 'NO'} "
                 f"({rep['comparison']['samples']} inputs, {rep['comparison']['elements']} elements per "
                 f"comparison, {rep['comparison']['differing']} differing)")
    for name, c in rep["comparison"]["checks"].items():
        lines.append(f"    {name:<34} {'ok' if c['equal'] else 'DIFFERENT':<10} {c['elements']:>8} elements")
    st = rep.get("step", {})
    lines.append("  step function: " + (f"yes, reproduces model_run: {st.get('matches_run')}" if st.get("available")
                                         else f"no ({st.get('reason')})"))
    kit = rep["tflm_kit"]
    lines.append(f"  TFLite Micro kit: {len(kit['ops'])} ops ({', '.join(kit['ops'])}), arena "
                 f"{_fmt_bytes(kit['arena_bytes'])} measured, {_fmt_bytes(kit['arena_recommended'])} recommended"
                 + (f" [{kit['arena_error']}]" if kit.get("arena_error") else ""))
    lib = rep["library"]
    lines.append(f"  C library: arena {lib['arena_bytes']:,} B, state {lib['state_bytes']:,} B"
                 + (f", flash {lib['flash_bytes']:,} B (code + weights, as linked)" if lib.get("flash_bytes") else ""))
    if rep.get("target"):
        t = rep["target"]
        lines.append(f"  {t['name']} on {t['board']}:")
        lines.append(f"    flash {rep['flash_bytes']:,} B  RAM {rep['ram_bytes']:,} B (data {t['size']['data']:,} + "
                     f"bss {t['size']['bss']:,} + stack {t['stack_bytes']:,})")
        c = t["counter"]
        lines.append(f"    instructions per inference {rep['instructions_per_inference']:,}, per timestep "
                     f"{rep['instructions_per_timestep']:,} (counter check: {c['loop_delta_measured']} of "
                     f"{c['loop_delta_expected']} {'exact' if c['exact'] else 'WRONG'})")
        lat = rep["latency"]
        lines.append(f"    latency ~{lat['latency_ms']:.3f} ms per inference at {lat['clock_mhz']} MHz "
                     f"({lat['clock_part']}), range {lat['latency_ms_low']:.3f}-{lat['latency_ms_high']:.3f} ms; "
                     f"{rep['cycles_per_mac']} cycles/MAC")
        for p in PUBLISHED:
            lines.append(f"    published: {p['cycles_per_mac']} cycles/MAC - {p['what']}")
    return "\n".join(lines)
