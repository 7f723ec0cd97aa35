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
