"""The import structure: memlib's modules form layers, and no import runs upward or in a circle.

Layers, lowest first (a module may import from its own layer or below, never above):

0. leaves: what a configuration is and facts about the world (config, catalog, specs, seeds, device, measure, ...),
   the JSON files on disk (jsonio), what a stored result is keyed by (keys) and what it holds (result)
1. data and models: datasets, networks, dropout modules, attacks, losses
2. training and measuring: the training loop, the stacked MLP trainer, pruning, probes, outlier metrics, the results
   store and the executors
3. experiments: a Config in, a Result out; result bundles (an import resolves each record's configuration)
4. verdicts and figures: claims and plots read Results
5. the front ends: notebooks' helpers, the summary, imported evidence, sweeps, the command line, the package's
   convenience imports

Every import counts, including those inside functions (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "memlib"

LAYERS = {
    0: ["_version", "catalog", "specs", "config", "seeds", "device", "measure", "paths", "jsonio", "keys", "result",
        "plots.style"],
    1: ["data", "models", "dropout", "attacks", "losses"],
    2: ["train", "multitrain", "pruning", "probes", "outliers", "store", "executor"],
    3: ["experiments", "bundle"],
    4: ["claims", "plots", "plan", "plans"],
    5: ["staged", "verdict_map", "notebook", "kernel", "summary", "sweep", "calibration", "cli", "evidence",
        "__main__", ""],
}


def modules() -> dict[str, Path]:
    """Module name relative to the package ('' for the package itself, 'probes.gradients', ...) -> file."""
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """For each module, the memlib modules it imports (the most specific module each import names)."""
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if name else []
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here if is_pkg else here[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                elif node.module and (node.module == "memlib" or node.module.startswith("memlib.")):
                    target = node.module.removeprefix("memlib").lstrip(".")
                else:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}".lstrip(".")
                    found.add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "memlib" or alias.name.startswith("memlib."):
                        found.add(alias.name.removeprefix("memlib").lstrip("."))
        found.discard(name)
        edges[name] = found
    return edges


def layer_of(name: str) -> int | None:
    """The layer of the longest listed prefix of ``name`` ('plots.style' before 'plots')."""
    best, best_len = None, -1
    for layer, prefixes in LAYERS.items():
        for pre in prefixes:
            hit = name == pre or (pre and name.startswith(pre + "."))
            if hit and len(pre) > best_len:
                best, best_len = layer, len(pre)
    return best


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in modules() if layer_of(m) is None)
    assert not unplaced, f"place these modules in a layer of tests/test_layers.py: {unplaced}"


def test_no_import_runs_up_a_layer():
    edges = imports(modules())
    upward = sorted(f"{src or 'memlib'} (layer {layer_of(src)}) -> {dst} (layer {layer_of(dst)})"
                    for src, dsts in edges.items() for dst in dsts
                    if layer_of(dst) is not None and layer_of(dst) > layer_of(src))
    assert not upward, "imports from a lower layer up to a higher one:\n" + "\n".join(upward)


def test_no_import_circle():
    assert cycles(imports(modules())) == []


def test_the_checks_can_fail():
    """The helpers find what they are meant to find, on a made-up graph."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("plots.style") == 0 and layer_of("plots.dropout_comparison") == 4
    assert layer_of("experiments.setup") == 3 and layer_of("") == 5 and layer_of("nowhere") is None


@pytest.mark.parametrize("module,target", [("data", "paths"), ("train", "specs"), ("experiments.setup", "train"),
                                           ("claims.early_learning", "measure")])
def test_known_edges_are_seen(module, target):
    assert target in imports(modules())[module]


def keyless_imports(edges: dict[str, set[str]], computing) -> list[str]:
    """Imports by a module whose code keys results (``computing(name)``) of a module whose code does not, other than
    the storage: an edit there would change what is computed without changing the key."""
    from memlib.keys import STORAGE

    storage = {s.removesuffix(".py") for s in STORAGE}
    return sorted(f"{src or 'memlib'} -> {dst}" for src, dsts in edges.items() if computing(src)
                  for dst in dsts if dst in edges and not computing(dst) and dst not in storage)


def test_code_left_out_of_the_key_is_not_imported_by_code_in_it():
    from memlib.keys import is_computing

    mods = modules()
    computing = lambda name: is_computing(mods[name].relative_to(PACKAGE).as_posix())  # noqa: E731

    leaks = keyless_imports(imports(mods), computing)
    assert not leaks, ("computing modules import modules left out of the source fingerprint (memlib.keys."
                       "NOT_COMPUTING); key them, or move what is imported:\n" + "\n".join(leaks))
    assert computing("train") and not computing("measure") and not computing("claims.dropout_comparison")


def test_a_keyless_import_is_found():
    edges = {"train": {"measure", "store"}, "measure": set(), "store": set(), "claims": {"train"}}
    assert keyless_imports(edges, lambda m: m == "train") == ["train -> measure"]
