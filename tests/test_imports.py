"""facecnn's modules import each other without cycles, and `import facecnn.cli` loads no torch.

The graph has an edge A -> B for every `import` or `from ... import` in A's source that names
facecnn module B, at module level or inside a function (a lazy import defers a cycle, it does
not remove it), relative names resolved. Importing facecnn.x.y first runs facecnn/x/__init__.py,
so that import is an edge to facecnn.x too, unless A lies inside facecnn.x (its package is
loaded already). Imports under `if TYPE_CHECKING:` never run and are left out; so are
references resolved at run time (importlib.import_module, facecnn.registry.Lazy).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import facecnn

SOURCE = Path(facecnn.__file__).resolve().parent

def module_names() -> dict[str, Path]:
    """'facecnn.x.y' -> its file, for every module and package of facecnn."""
    names = {}
    for file in sorted(SOURCE.rglob("*.py")):
        parts = list(file.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = file
    return names


def type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes inside `if TYPE_CHECKING:` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def imported(name: str, file: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The facecnn modules module `name` imports -> the first line that does."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(file.read_text(), str(file))
    skipped = type_checking_only(tree)
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import x` imports the submodule pkg.x if there is one, else pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != "facecnn":
                continue
            while target not in modules:  # `import facecnn.x.attr`-style spellings
                target = target.rpartition(".")[0]
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):  # the module and the packages it runs
                dependency = ".".join(parts[:depth])
                if dependency != name and not name.startswith(dependency + "."):
                    found.setdefault(dependency, node.lineno)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    modules = module_names()
    return {name: imported(name, file, modules) for name, file in modules.items()}


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    members = set(component)
    return "\n".join(f"  {a} -> {b} (line {line})" for a in component
                     for b, line in graph[a].items() if b in members)


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles among facecnn's modules:\n" + "\n\n".join(
        describe(graph, component) for component in found)


def test_the_graph_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "facecnn"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("def f():\n    from . import b\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from facecnn import c\n"
        "import facecnn.c\n")
    (package / "c.py").write_text("from .sub.a import f\n")
    modules = {"facecnn": package / "__init__.py", "facecnn.sub": package / "sub/__init__.py",
               "facecnn.sub.a": package / "sub/a.py", "facecnn.sub.b": package / "sub/b.py",
               "facecnn.c": package / "c.py"}
    graph = {name: imported(name, file, modules) for name, file in modules.items()}
    assert graph["facecnn.sub.a"] == {"facecnn.sub.b": 2}
    assert graph["facecnn.sub.b"] == {"facecnn.c": 4}
    assert graph["facecnn.c"] == {"facecnn.sub": 1, "facecnn.sub.a": 1}
    assert cycles(graph) == [["facecnn.c", "facecnn.sub.a", "facecnn.sub.b"]]


def test_the_model_registry_keeps_dlibs_own_chip() -> None:
    """dlib_resnet spells out the crop faces/crops.py names DLIB_CHIP (importing it was a cycle)."""
    from facecnn.faces.crops import DLIB_CHIP
    from facecnn.models.catalog import model_info

    assert model_info("dlib_resnet").crop == DLIB_CHIP


def test_the_cli_and_onnx_inference_load_no_torch() -> None:
    code = ("import sys, facecnn.cli, facecnn.inference, facecnn.inference.onnx, "
            "facecnn.faces.embedders.onnx, facecnn.models.registry\n"
            "sys.exit('torch loaded' if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
