"""`edgelstm doctor`: the facts it reads, and the fix-it rules for known-bad combinations."""
import json
import subprocess
import sys

import pytest

from edgelstm import doctor


def fake_versions(monkeypatch, **versions):
    table = {"numpy": "2.4.6", "numba": "0.68.1", "ai-edge-litert": None, "tflite-runtime": None,
             "tensorflow": None, "tflite-micro": None}
    table.update({k.replace("_", "-"): v for k, v in versions.items()})
    monkeypatch.setattr(doctor, "_version", lambda dist: table.get(dist))


def problems(report):
    return " | ".join(p["problem"] + " -> " + p["fix"] for p in report["problems"])


def test_healthy_machine_has_no_problem(monkeypatch):
    fake_versions(monkeypatch, ai_edge_litert="2.3.0")
    assert doctor.diagnose()["problems"] == []


def test_tflite_runtime_with_numpy2(monkeypatch):
    fake_versions(monkeypatch, tflite_runtime="2.14.0", numpy="2.1.0")
    text = problems(doctor.diagnose())
    assert "does not work with numpy 2.1.0" in text and 'numpy<2' in text


def test_tflite_runtime_with_numpy1_is_fine(monkeypatch):
    fake_versions(monkeypatch, tflite_runtime="2.14.0", numpy="1.26.4")
    monkeypatch.setattr(sys, "version_info", (3, 11, 2))
    assert doctor.diagnose()["problems"] == []


def test_tflite_runtime_on_python_312(monkeypatch):
    fake_versions(monkeypatch, tflite_runtime="2.14.0", numpy="1.26.4")
    monkeypatch.setattr(sys, "version_info", (3, 12, 1))
    assert "no builds for Python" in problems(doctor.diagnose())


def test_armv7_without_numba(monkeypatch):
    fake_versions(monkeypatch, numba=None, tflite_runtime="2.14.0", numpy="1.26.4")
    monkeypatch.setattr(doctor.platform, "machine", lambda: "armv7l")
    text = problems(doctor.diagnose())
    assert "32-bit ARM" in text and "64-bit OS" in text


def test_no_interpreter(monkeypatch):
    fake_versions(monkeypatch)
    assert "no reference interpreter" in problems(doctor.diagnose())


def test_unwritable_numba_cache(monkeypatch, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(ro / "cache"))
    fake_versions(monkeypatch, ai_edge_litert="2.3.0")
    import os
    if os.geteuid() == 0:  # root writes anywhere: make the directory a file instead
        ro.chmod(0o700)
        (ro / "cache").write_text("not a directory")
    text = problems(doctor.diagnose())
    assert "not writable" in text and "NUMBA_CACHE_DIR" in text


def test_cli_json_and_no_tensorflow_import():
    code = ("import sys, json; from edgelstm.cli import main; rc = main(['doctor', '--json']); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras')]; "
            "sys.exit(3 if bad else rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["interpreters"]["ai-edge-litert"]["importable"] is True
