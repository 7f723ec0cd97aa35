"""The code's shape, checked: one error base for every project exception."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import exiflang
from exiflang.errors import ExiflangError


def _project_modules():
    for info in pkgutil.walk_packages(exiflang.__path__, "exiflang."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def test_every_project_exception_derives_from_exiflang_error():
    classes = {
        f"{module.__name__}.{name}": cls
        for module in _project_modules()
        for name, cls in vars(module).items()
        if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == module.__name__
    }
    assert len(classes) >= 20  # the walk found the package's exceptions
    strays = sorted(name for name, cls in classes.items() if not issubclass(cls, ExiflangError))
    assert not strays, f"exceptions outside the ExiflangError tree: {strays}"


def test_cli_prints_a_deep_project_error_as_one_line_and_debug_shows_it(capsys):
    import pytest

    from exiflang.cli import main

    # A model folder that does not exist: the loader's ModelError travels up to cli.main untranslated.
    code = main(["detect", "../shared/data/casia1/au/none.jpg", "--model", "/nonexistent/model"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1 and "/nonexistent/model" in err
    with pytest.raises(ExiflangError):
        main(["--debug", "detect", "../shared/data/casia1/au/none.jpg", "--model", "/nonexistent/model"])


# ---------------------------------------------------------------- imports: layers and cycles
import ast
from pathlib import Path

SRC = Path(exiflang.__file__).resolve().parent
# Lower layers never import higher ones (docs/DESIGN.md). The package root only holds the version and lazy names.
LAYERS = {"": 0, "errors": 0, "paths": 0, "imageio": 0, "jsonfile": 0, "device": 0, "ranges": 0, "exif": 0,
          "data": 1, "models": 1,
          "forensics": 2, "probes": 2, "training": 2,
          "eval": 3, "report": 3,
          "commands": 4, "cli": 4, "__main__": 4}


def _module_name(path: Path) -> str:
    parts = ["exiflang", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:]) if "." in module else Path()
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """Every exiflang -> exiflang import edge, function-level imports included."""
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.split(".")[0] == "exiflang")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "exiflang":
                    continue
                subs = {f"{target}.{a.name}" for a in node.names if _exists(f"{target}.{a.name}")}
                # `from pkg import submodule` depends on the submodule; `from pkg import name`, on pkg itself.
                edges.update(subs)
                if len(subs) < len(node.names):
                    edges.add(target)
        edges.discard(name)
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else ""]


def test_no_module_imports_from_a_higher_layer():
    graph = import_graph()
    assert len(graph) > 60  # the walk saw the package
    unknown = sorted({m.split(".")[1] for m in graph if "." in m} - set(LAYERS))
    assert not unknown, f"top-level modules without a layer in tests/test_structure.py: {unknown}"
    upward = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts if _layer(t) > _layer(m))
    assert not upward, f"imports from a higher layer: {upward}"


def test_no_import_cycle():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_no_function_longer_than_60_lines():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, f"functions over 60 lines: {long}"
