"""How a profile report is shown: a terminal table, and one self-contained HTML page with plots.

Both read the same report dict that `--json` writes. In the HTML every number cell carries the
exact JSON value in `data-value` (the visible text is that value formatted), so that the page can
be checked against the JSON mechanically.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from ..errors import EdgeLSTMError

_LATENCY_COLUMNS = [("p50_us", "p50 µs"), ("p90_us", "p90 µs"), ("p99_us", "p99 µs"), ("min_us", "min µs"),
                    ("max_us", "max µs"), ("throughput_seq_per_s", "seq/s"), ("cold_start_ms", "cold start ms"),
                    ("peak_rss_mb", "peak RSS MiB")]


_MCU_COLUMNS = ("instructions_per_inference", "instructions_per_timestep", "clock_mhz", "latency_ms",
                "latency_ms_low", "latency_ms_high", "flash_bytes", "ram_bytes")


def _num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.2f}"


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def render_table(report: dict) -> str:
    """The report as plain text for a terminal."""
    lines = [f"{report['model']}: {report['macs']:,} MACs per call of one sequence, "
             f"{report['parameters']:,} parameters ({_kib(report['weight_bytes'])} of weights), "
             f"activations {_kib(report['activation_bytes'])} in all, {_kib(report['peak_activation_bytes'])} "
             "live at most",
             f"settings: {report['settings']['runs']} timed runs after {report['settings']['warmup']} warm-up, "
             f"batch {report['settings']['batch']}, {report['settings']['threads']} thread(s), "
             f"input {report['settings']['input_shapes']}; each backend in a fresh process", ""]
    header = f"{'backend':<15} {'version':<22}" + "".join(f" {title:>13}" for _, title in _LATENCY_COLUMNS)
    lines.append(header)
    lines.append("-" * len(header))
    for name, b in report["backends"].items():
        lines.append(f"{name:<15} {b['version'][:22]:<22}"
                     + "".join(f" {_num(b.get(key)):>13}" for key, _ in _LATENCY_COLUMNS))
    for name, why in report["skipped"].items():
        lines.append(f"{name:<15} skipped: {why}")
    if "edgelstm" in report["backends"] and len(report["backends"]) > 1:
        ours = report["backends"]["edgelstm"]["p50_us"]
        ratios = ", ".join(f"{n} {b['p50_us'] / ours:.2f}x" for n, b in report["backends"].items() if n != "edgelstm")
        lines.append(f"p50 relative to edgelstm: {ratios}")
    if report["ops"]:
        lines += ["", "edgelstm time per operator (separate instrumented runs; shares sum to 1):",
                  f"  {'op':<38} {'time µs':>11} {'share':>8} {'MACs':>14}"]
        for op in report["ops"]:
            lines.append(f"  {op['name'][:38]:<38} {op['time_us']:>11,.2f} {op['share']:>8.1%} {op['macs']:>14,}")
    mcu = report.get("mcu") or {}
    if mcu:
        lines += ["", "microcontroller estimate (generated C library in QEMU; instructions counted, cycles modelled):"]
        for t, e in mcu.items():
            if "unavailable" in e:
                lines.append(f"  {t:<14} not estimated: {e['unavailable']}")
                continue
            lines.append(f"  {t:<14} {e['instructions_per_inference']:>12,} instructions/inference, "
                         f"{e['instructions_per_timestep']:,}/timestep; {e['latency_ms']:,.3f} ms at "
                         f"{e['clock_mhz']:g} MHz (range {e['latency_ms_low']:,.3f}-{e['latency_ms_high']:,.3f}); "
                         f"flash {e['flash_bytes']:,} B, RAM {e['ram_bytes']:,} B")
    for layer in report["lstm_layers"]:
        lines.append(f"  LSTM op {layer['op_index']}: {layer['units']} units, {layer['timesteps']} timesteps, "
                     f"{layer['per_timestep_us']:,.3f} µs and {layer['macs_per_timestep']:,} MACs per timestep")
    return "\n".join(lines)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(report: dict) -> tuple[str, str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeLSTMError("--html needs matplotlib (pip install matplotlib, or the workstation extra)") from None
    import numpy as np

    backends = report["backends"]
    n = max(len(backends), 1)
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), squeeze=False)
    for ax, (name, b) in zip(axes[:, 0], backends.items()):
        samples = np.asarray(b["samples_us"])
        ax.hist(samples, bins=min(60, max(10, samples.size // 5)), color="#4472c4")
        for key, style in (("p50_us", "-"), ("p90_us", "--"), ("p99_us", ":")):
            ax.axvline(b[key], color="#c00000", linestyle=style, label=f"{key[:3]} {b[key]:,.1f} µs")
        ax.set_title(f"{name} {b['version']}: latency of {b['runs']} runs")
        ax.set_xlabel("µs per call")
        ax.legend(fontsize=8)
    fig.tight_layout()
    latency = _png(fig)
    plt.close(fig)

    ops_png = ""
    if report["ops"]:
        ops = report["ops"]
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(ops) + 1.2))
        y = np.arange(len(ops))
        ax.barh(y, [o["time_us"] for o in ops], color="#70ad47")
        ax.set_yticks(y, [o["name"] for o in ops])
        ax.invert_yaxis()
        for yi, o in zip(y, ops):
            ax.text(o["time_us"], yi, f" {o['share']:.1%}", va="center", fontsize=8)
        ax.set_xlim(0, max(o["time_us"] for o in ops) * 1.15)  # room for the share labels
        ax.set_xlabel("µs per call (edgelstm)")
        ax.set_title("time per operator")
        fig.tight_layout()
        ops_png = _png(fig)
        plt.close(fig)
    return latency, ops_png


def _cell(value, key: str) -> str:
    return f'<td data-key="{html.escape(key)}" data-value="{html.escape(json.dumps(value))}">{_num(value)}</td>'


def render_html(report: dict) -> str:
    """One self-contained page: summary, latency table and plots, per-operator table and chart."""
    latency_png, ops_png = _plots(report)
    esc = html.escape
    rows = []
    for name, b in report["backends"].items():
        rows.append(f"<tr><th>{esc(name)}</th><td>{esc(b['version'])}</td>"
                    + "".join(_cell(b.get(k), f"backends.{name}.{k}") for k, _ in _LATENCY_COLUMNS) + "</tr>")
    skipped = "".join(f"<li><b>{esc(n)}</b>: {esc(w)}</li>" for n, w in report["skipped"].items())
    op_rows = "".join(
        f"<tr><th>{esc(o['name'])}</th>{_cell(o['time_us'], f'ops.{i}.time_us')}"
        f"{_cell(o['share'], f'ops.{i}.share')}{_cell(o['macs'], f'ops.{i}.macs')}</tr>"
        for i, o in enumerate(report["ops"]))
    layer_rows = "".join(
        f"<tr><th>op {la['op_index']}</th>{_cell(la['units'], f'lstm_layers.{i}.units')}"
        f"{_cell(la['timesteps'], f'lstm_layers.{i}.timesteps')}"
        f"{_cell(la['per_timestep_us'], f'lstm_layers.{i}.per_timestep_us')}"
        f"{_cell(la['macs_per_timestep'], f'lstm_layers.{i}.macs_per_timestep')}</tr>"
        for i, la in enumerate(report["lstm_layers"]))
    totals = "".join(f"<tr><th>{esc(k)}</th>{_cell(report[k], k)}</tr>"
                     for k in ("macs", "parameters", "weight_bytes", "activation_bytes", "peak_activation_bytes"))
    s = report["settings"]
    ops_section = ""
    if report["ops"]:
        ops_section = (
            "<h2>edgelstm time per operator</h2><p>Measured in separate instrumented runs; the shares sum to 1.</p>"
            f'<img alt="time per operator" src="data:image/png;base64,{ops_png}">'
            "<table><tr><th>op</th><th>µs</th><th>share</th><th>MACs</th></tr>" + op_rows + "</table>"
            + ("<h3>LSTM layers</h3><table><tr><th>layer</th><th>units</th><th>timesteps</th>"
               "<th>µs per timestep</th><th>MACs per timestep</th></tr>" + layer_rows + "</table>"
               if layer_rows else ""))
    mcu_rows = "".join(
        f"<tr><th>{esc(t)}</th>" + "".join(_cell(e.get(k), f"mcu.{t}.{k}") for k in _MCU_COLUMNS) + "</tr>"
        for t, e in (report.get("mcu") or {}).items() if "unavailable" not in e)
    mcu_section = ("<h2>Microcontroller estimate</h2><p>The generated C library run in QEMU: instructions "
                   "counted exactly, cycles from a per-instruction-class model at the stated clock.</p>"
                   "<table><tr><th>target</th>" + "".join(f"<th>{esc(k)}</th>" for k in _MCU_COLUMNS) + "</tr>"
                   + mcu_rows + "</table>") if mcu_rows else ""
    machine = report["machine"]
    embedded = json.dumps(report).replace("</", "<\\/")  # the raw report, safe inside <script>
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgelstm profile: {esc(report['model'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 60em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ text-align: left; background: #f4f4f4; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>edgelstm profile</h1>
<p><code>{esc(report['model'])}</code>, {esc(report['date'])}, on {esc(machine['cpu'])} ({machine['cores']} cores),
Python {esc(machine['python'])}.</p>
<p>{s['runs']} timed runs after {s['warmup']} warm-up runs, batch {s['batch']}, {s['threads']} thread(s),
input shapes {esc(str(s['input_shapes']))}; every backend measured in a fresh process.</p>
<h2>Model</h2><table>{totals}</table>
<h2>Latency</h2>
<table><tr><th>backend</th><th>version</th>{''.join(f'<th>{esc(t)}</th>' for _, t in _LATENCY_COLUMNS)}</tr>
{''.join(rows)}</table>
{'<p>Not measured:</p><ul>' + skipped + '</ul>' if skipped else ''}
<img alt="latency distributions" src="data:image/png;base64,{latency_png}">
{ops_section}
{mcu_section}
<script type="application/json" id="edgelstm-profile">{embedded}</script>
</body></html>
"""


def write_html(report: dict, path: Path) -> None:
    Path(path).write_text(render_html(report), encoding="utf-8")
