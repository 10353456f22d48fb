"""The benchmark entry point runs end to end on the small grid (the full grid is run by hand)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_small_grid(tmp_path):
    out = tmp_path / "results.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--grid", "small", "--runs", "40",
                        "--no-start-times", "--no-readme", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    m = data["machine"]
    assert m["cores"] >= 1 and m["cpu"] and {"edgelstm", "numpy", "numba", "ai-edge-litert"} <= set(m["versions"])
    (row,) = data["rows"]
    assert row["macs"] == row["timesteps"] * 4 * row["hidden"] * (6 + row["hidden"]) + row["hidden"] * 4
    assert set(row["us"]) == {"edgelstm", "litert_int8", "litert_f32", "tflm_int8", "keras_f32"}
    assert all(v > 0 for v in row["us"].values())
    for name, ratio in row["ratio"].items():
        assert abs(ratio - row["us"][name] / row["us"]["edgelstm"]) < 0.5 * ratio, name
    assert "| 16 | 20 | 1 | 1 |" in r.stdout


def test_readme_table_is_replaced_in_place(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run
    finally:
        sys.path.pop(0)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n")
    run.update_readme("new table", readme)
    assert readme.read_text() == "intro\n<!-- results:start -->\nnew table\n<!-- results:end -->\nafter\n"


def test_ab_against_a_revision(tmp_path):
    """benchmarks/ab.py extracts HEAD's package next to the working tree's, checks their outputs are
    identical on the small grid, and times both (in both flavours) against LiteRT in one process."""
    out = tmp_path / "ab.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ab.py"), "--base", "HEAD", "--grid", "small",
                        "--runs", "40", "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["flavor"] for row in rows] == ["tflite", "tflm"]
    for row in rows:
        assert row["base_us"] > 0 and row["head_us"] > 0 and row["litert_over_head"] > 0
    assert "h16-t20-d1-b1" in r.stdout
