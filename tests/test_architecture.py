"""The house rules of edgelstm's layout, checked by reading the source (no imports run):

- no import cycle between modules (imports at module level; lazy imports inside functions exist to
  keep start-up cheap and are not counted);
- no module imports another module's private (_underscore) name;
- kernels never ask which flavour they are in: flavours are kernel tables (edgelstm/ops/flavor.py);
- the LSTM op's tensor indices are written once, in edgelstm/lstm_shared.py;
- the runtime and the graph layer never import TensorFlow at module level.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "edgelstm"


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = modules()


def _resolve(mod: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    base = package.split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _top_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported (not inside functions, not under
    `if TYPE_CHECKING`)."""
    def walk(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield node
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" in ast.unparse(node.test):
                    continue
                yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                yield from walk(node.body)
                for h in node.handlers:
                    yield from walk(h.body)
                yield from walk(node.orelse)
                yield from walk(node.finalbody)
            elif isinstance(node, ast.ClassDef):
                yield from walk(node.body)
    yield from walk(tree.body)


def import_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in _top_level_imports(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _resolve(mod, path, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
            edges[mod].update(t for t in targets if t in MODULES and t != mod)
    return edges


def test_no_import_cycles():
    edges = import_edges()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def strongconnect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            # a package importing its own submodules is how packages work; a cycle is two modules
            # that need each other
            real = [m for m in comp if not any(o.startswith(m + ".") for o in comp)]
            if len(real) > 1:
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            strongconnect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_imported_across_modules():
    found = []
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                found += [f"{mod}: {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, "private names imported from other modules: " + "; ".join(found)


def test_kernels_do_not_switch_on_their_flavor():
    pattern = re.compile(r"self\.flavor|\.flavor\s*[=!]=|[=!]=\s*[\"']tflm[\"']|\._tflm\b")
    hits = []
    for mod, path in MODULES.items():
        if mod.startswith("edgelstm.ops.") and mod != "edgelstm.ops.flavor":
            hits += [f"{mod}:{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
                     if pattern.search(line)]
    assert not hits, "flavour switches in kernels:\n" + "\n".join(hits)


def test_lstm_tensor_indices_are_written_once():
    """No literal index into an op's inputs beyond the first four (which ordinary ops use), nor
    into its intermediates, outside lstm_shared.py."""
    pattern = re.compile(r"\b(?:inputs\[\s*(?:[4-9]|\d\d)\s*\]|intermediates\[\s*\d+\s*\])")
    hits = []
    for mod, path in MODULES.items():
        if mod != "edgelstm.lstm_shared":
            hits += [f"{mod}:{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
                     if pattern.search(line)]
    assert not hits, "bare LSTM tensor indices:\n" + "\n".join(hits)


@pytest.mark.parametrize("mod", [m for m in MODULES if not m.startswith(("edgelstm.convert", "edgelstm.demo"))])
def test_runtime_does_not_import_tensorflow_at_module_level(mod):
    tree = ast.parse(MODULES[mod].read_text())
    names = []
    for node in _top_level_imports(tree):
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    assert not [n for n in names if n.split(".")[0] in ("tensorflow", "tf_keras", "keras")]
