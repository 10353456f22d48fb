"""A deterministic fuzz run in CI: mutated models never crash, hang or raise foreign exceptions.

The long run (10,000+ cases) is recorded in tests/FUZZING.md; tests/fuzz.py explains the mutations.
"""
import fuzz


def test_mutations_are_deterministic(tmp_path):
    fuzz.write_seeds(tmp_path, names=("basic", "stacked3"))
    seeds = {p.stem: p.read_bytes() for p in sorted(tmp_path.glob("*.tflite"))}
    a = [fuzz.make_case(seeds, 7, i) for i in range(30)]
    b = [fuzz.make_case(seeds, 7, i) for i in range(30)]
    assert a == b
    assert len({data for _, data, _ in a}) > 25  # the cases really differ
    assert sum(data != seeds[name] for name, data, _ in a) >= 25


def test_fuzz_run_has_no_findings(tmp_path):
    seed_dir = tmp_path / "seeds"
    fuzz.write_seeds(seed_dir)
    result = fuzz.fuzz(seed_dir, seed=0, cases=300, timeout=60)
    assert result["findings"] == [], result["findings"][:5]
    counts = result["counts"]
    assert sum(counts.values()) == 300
    # the mutations must reach the kernels of both flavours, not only the loader's checks
    ran = {f: sum(n for k, n in counts.items() if f"{f}:ran" in k) for f in ("tflite", "tflm")}
    refused = sum(n for k, n in counts.items() if "tflite:load" in k)
    assert ran["tflite"] >= 20 and ran["tflm"] >= 20 and refused >= 100, counts


def test_a_crashing_worker_is_reported_not_fatal(tmp_path, monkeypatch):
    """The harness itself: a worker that dies mid-case is counted as a crash and the run goes on."""
    seed_dir = tmp_path / "seeds"
    fuzz.write_seeds(seed_dir, names=("tiny",))
    monkeypatch.setenv("EDGELSTM_FUZZ_SELFTEST_CRASH", "3")
    result = fuzz.fuzz(seed_dir, seed=0, cases=6, timeout=60)
    assert result["counts"].get("crash") == 1 and result["findings"][0]["case"] == 3
    assert sum(result["counts"].values()) == 6
