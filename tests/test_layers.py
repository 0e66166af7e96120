"""The import graph's layers: no import circles, ``imagery`` never imports ``detect``, no upward imports.

Every module's imports are read with ``ast`` (those inside functions too), so a lazy import counts as a
dependency. Only an ``if __name__ == "__main__":`` block is left out: it is an entry point calling the CLI,
not something the module needs. ``python tests/test_layers.py`` prints the layers and what each package
imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("imagery", "detect")

#: Lowest first. A module may import its own package's modules and anything in a lower layer; packages that
#: share a layer are peers and do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("imagery",),  # AOIs, catalogues, reads, clouds, cache
    ("detect.core", "detect"),  # Detection, registry, bands, water, slicing, weights; ``detect`` re-exports
    ("detect.ships",),  # optical ship detectors and the YOLO adapter (which the truck experiment uses too)
    ("detect.trucks", "detect.sar", "detect.counting"),  # truck and radar detectors; counting
    ("detect.detectors", "detect.report"),  # every detector registered; the report folder
    ("detect.pipeline",),  # the run: plan → search → per scene → tally → outputs; batch
    ("detect.cli",),  # the command line
)


def modules() -> dict[str, tuple[Path, bool]]:
    """Module name → (file, is a package ``__init__``) for every module of ``PACKAGES``."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _is_main_block(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if _is_main_block(child):
            continue
        yield child
        yield from _walk(child)


def imports_of(name: str, path: Path, is_pkg: bool, known: dict[str, tuple[Path, bool]]) -> set[str]:
    """The modules of ``PACKAGES`` that module ``name`` imports (absolute and relative, at any depth)."""
    found: set[str] = set()
    for node in _walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # ``from pkg import module``
    out = set()
    for target in found:
        while target and target not in known:  # ``pkg.module.name`` → ``pkg.module``
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, is_pkg, known) for name, (path, is_pkg) in known.items()}


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the ``LAYERS`` package that holds ``module``): the longest matching prefix."""
    best = (-1, "")
    for i, layer in enumerate(LAYERS):
        for pkg in layer:
            if (module == pkg or module.startswith(pkg + ".")) and len(pkg) > len(best[1]):
                best = (i, pkg)
    if best[0] < 0:
        raise AssertionError(f"{module} is in no layer; add its package to LAYERS in tests/test_layers.py")
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_imagery_never_imports_detect() -> None:
    bad = [f"{m} → {t}" for m, ts in import_graph().items() if m.startswith("imagery") for t in ts
           if t.split(".")[0] == "detect"]
    assert bad == []


def test_every_module_has_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


def test_no_module_imports_a_higher_layer_or_a_peer_package() -> None:
    bad = []
    for module, targets in import_graph().items():
        level, pkg = layer_of(module)
        for target in targets:
            t_level, t_pkg = layer_of(target)
            if t_level > level:
                bad.append(f"{module} (layer {level}) imports {target} (layer {t_level}, above)")
            elif t_level == level and t_pkg != pkg and {pkg, t_pkg} != {"detect", "detect.core"}:
                bad.append(f"{module} imports {target}: {pkg} and {t_pkg} are peers in layer {level}")
    assert bad == [], "\n".join(sorted(bad))


def test_the_layer_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text(
        "def f():\n    from detect.cli import main\n"
        "from . import sibling\n"
        "if __name__ == '__main__':\n    import detect.pipeline\n"
    )
    known = {"detect.core.mod": (src, False), "detect.core.sibling": (src, False), "detect.cli": (src, True),
             "detect.pipeline": (src, True)}
    assert imports_of("detect.core.mod", src, False, known) == {"detect.cli", "detect.core.sibling"}


if __name__ == "__main__":
    graph = import_graph()
    for i, layer in enumerate(LAYERS):
        print(f"layer {i}")
        for pkg in layer:
            inside = [t for m, ts in graph.items() if layer_of(m)[1] == pkg for t in ts]
            uses = sorted({layer_of(t)[1] for t in inside} - {pkg})
            print(f"  {pkg:<18} imports {', '.join(uses) or '-'}")
    print("cycles:", cycles(graph) or "none")
