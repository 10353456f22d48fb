"""The zoo's on-disk cache of converted models (tests/zoo.py) is keyed by everything that decides
the bytes: a change to the conversion recipe or to the TensorFlow / tf_keras versions must make
every test convert again instead of reusing a model the current recipe no longer produces."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import edgelstm.convert
import zoo
from edgelstm.tflite_reader import read_model

NAMES = ["basic", "float_io", "trained"]


class _Rebuilt(Exception):
    """Raised where build() starts converting: the cache was not used."""


def _keys() -> dict[str, str]:
    return {n: zoo.cache_key(n) for n in NAMES}


def edgelstm_modules_reached(fn) -> set[str]:
    """The edgelstm modules whose functions, classes or module objects `fn`'s code names (nested
    code too), followed through the edgelstm functions it calls."""
    modules: set[str] = set()
    todo, done = [fn], set()
    while todo:
        f = todo.pop()
        if f.__code__ in done:
            continue
        done.add(f.__code__)
        modules.add(f.__module__)
        codes = [f.__code__]
        while codes:
            code = codes.pop()
            codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
            for name in code.co_names:
                obj = f.__globals__.get(name)
                module = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
                if not isinstance(module, str) or not module.startswith("edgelstm"):
                    continue
                modules.add(module)
                if isinstance(obj, types.FunctionType):
                    todo.append(obj)
    return modules


def test_recipe_modules_cover_what_the_conversion_runs():
    """build() converts with edgelstm.convert.convert_int8; everything of edgelstm's that it reaches
    must be in RECIPE_MODULES, or a change there would not reach the key."""
    build_names = zoo.build.__code__.co_names
    assert "convert_int8" in build_names and "edgelstm.convert" in build_names
    modules = edgelstm_modules_reached(edgelstm.convert.convert_int8)
    assert modules, "nothing reached: the walk is broken"
    assert modules <= set(zoo.RECIPE_MODULES), sorted(modules - set(zoo.RECIPE_MODULES))
    files = {str(p) for p in zoo.recipe_files()}
    assert files == {inspect.getsourcefile(importlib.import_module(m)) for m in zoo.RECIPE_MODULES}


def test_key_follows_the_recipe_source(tmp_path, monkeypatch):
    before = _keys()
    (stock,) = zoo.recipe_files()
    text = stock.read_text()
    copy = tmp_path / stock.name
    copy.write_text(text)
    monkeypatch.setattr(zoo, "recipe_files", lambda: [copy])
    assert _keys() == before, "the key must depend on the recipe's text, not on where the file lives"
    for old, new in [("conv.optimizations = [tf.lite.Optimize.DEFAULT]", "conv.optimizations = []"),
                     ("TF_USE_LEGACY_KERAS", "TF_USE_LEGACY_KERAS_")]:  # the recipe and a helper it calls
        assert old in text
        copy.write_text(text.replace(old, new))
        after = _keys()
        assert all(after[n] != before[n] for n in NAMES), (old, before, after)


def test_key_follows_the_toolchain_versions(monkeypatch):
    versions = zoo.toolchain_versions()
    assert any(v.startswith("tf_keras ") for v in versions), versions
    assert any(v.split()[0] in ("tensorflow", "tensorflow-cpu") for v in versions), versions
    before = _keys()
    for i, v in enumerate(versions):
        dist, version = v.split()
        bumped = versions[:i] + (f"{dist} {version}.post1",) + versions[i + 1:]
        monkeypatch.setattr(zoo, "toolchain_versions", lambda b=bumped: b)
        after = _keys()
        assert all(after[n] != before[n] for n in NAMES), v


def test_build_reads_only_the_file_of_the_current_key(tmp_path, monkeypatch):
    """A model cached under the current key is used as is; once the recipe changes, build() converts
    again (stopped here where it starts) rather than return the stale file."""
    monkeypatch.setattr(zoo, "CACHE_DIR", tmp_path)
    stale = b"converted by the previous recipe"
    (tmp_path / f"basic-{zoo.cache_key('basic')}.tflite").write_bytes(stale)
    assert zoo.build("basic") == stale

    def rebuilt():
        raise _Rebuilt

    monkeypatch.setattr(zoo, "_keras", rebuilt)
    (stock,) = zoo.recipe_files()
    copy = tmp_path / "recipe" / stock.name
    copy.parent.mkdir()
    copy.write_text(stock.read_text().replace("representative_dataset = representative",
                                              "representative_dataset = None"))
    monkeypatch.setattr(zoo, "recipe_files", lambda: [copy])
    with pytest.raises(_Rebuilt):
        zoo.build("basic")


def _contents(data: bytes) -> tuple:
    """What a model computes with: every tensor (name, type, shape, quantization, constant data)
    and every operator's wiring, without the bytes of buffers no tensor uses."""
    g = read_model(data)
    tensors = [(t.name, t.type_name, tuple(t.shape), tuple(t.shape_signature),
                None if t.quant is None else (np.asarray(t.quant.s).tobytes(), np.asarray(t.quant.zp).tobytes()),
                None if t.data is None else t.data.tobytes()) for t in g.tensors]
    ops = [(op.opcode, tuple(op.inputs), tuple(op.outputs)) for op in g.operators]
    return tensors, ops, tuple(g.inputs), tuple(g.outputs)


def test_worker_processes_build_what_build_does(tmp_path, monkeypatch):
    """tests/conftest.py converts a cold cache with zoo.build_in_processes: the workers import the
    files that register the builders (tests/ops here) and must write the models build() writes."""
    if "ops_act_in_relu" not in zoo.names():  # registered by tests/ops/test_activations.py
        path = Path(__file__).parent / "ops" / "test_activations.py"
        spec = importlib.util.spec_from_file_location("_zoo_cache_ops_test_activations", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    names = ["tiny", "ops_act_in_relu"]
    monkeypatch.setattr(zoo, "CACHE_DIR", tmp_path / "workers")
    assert zoo.missing(names) == names
    left, log = zoo.build_in_processes(names, workers=2)
    assert left == [], log
    assert zoo.missing(names) == []
    by_workers = {n: zoo.build(n) for n in names}
    monkeypatch.setattr(zoo, "CACHE_DIR", tmp_path / "here")
    for n in names:
        assert _contents(zoo.build(n)) == _contents(by_workers[n]), n
