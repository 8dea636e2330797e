"""S6, S8 groundwork: the core shared by all models does no I/O, runs no threads, reads no clock.

Every .py file under impls/_core is parsed with `ast` (never imported), and any import of a
networking, threading, event-loop or clock module fails the test, wherever it appears: at top
level, inside a function, or under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import impls._core

CORE_DIR = Path(impls._core.__file__).resolve().parent
FORBIDDEN = frozenset(
    {"socket", "select", "selectors", "threading", "_thread", "trio", "asyncio", "time"}
)
CORE_FILES = sorted(CORE_DIR.rglob("*.py"))


def imported_modules(tree: ast.AST) -> list[tuple[int, str, int]]:
    """(line, absolute module name or '' for relative, relative level) for every import."""
    found: list[tuple[int, str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or "", node.level))
    return found


def forbidden_imports(source: str) -> list[str]:
    problems = []
    for line, module, level in imported_modules(ast.parse(source)):
        if level == 0 and module.split(".")[0] in FORBIDDEN:
            problems.append(f"line {line}: imports {module}")
    return problems


def dynamic_imports(source: str) -> list[str]:
    """Uses of __import__ or importlib, which would get round the static check."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id == "__import__":
            problems.append(f"line {node.lineno}: __import__")
    for line, module, level in imported_modules(ast.parse(source)):
        if level == 0 and module.split(".")[0] == "importlib":
            problems.append(f"line {line}: imports importlib")
    return problems


def test_s6_core_files_are_found() -> None:
    """S6: the scan below is not vacuous: it sees the modules the core is made of."""
    names = {p.name for p in CORE_FILES}
    assert {"__init__.py", "ids.py", "table.py", "send_queue.py", "lifecycle.py"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE_DIR)))
def test_s6_core_module_imports_no_io_thread_or_clock_module(path: Path) -> None:
    """S6: no module of impls/_core imports socket, select, selectors, threading, _thread,
    trio, asyncio or time."""
    problems = forbidden_imports(path.read_text(encoding="utf-8"))
    assert not problems, f"{path.name} must stay I/O-free: {problems}"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE_DIR)))
def test_s6_core_module_imports_nothing_dynamically(path: Path) -> None:
    """S6: no __import__ / importlib in the core, so the static check cannot be bypassed."""
    problems = dynamic_imports(path.read_text(encoding="utf-8"))
    assert not problems, f"{path.name}: {problems}"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE_DIR)))
def test_s6_core_module_depends_on_no_model_or_suite(path: Path) -> None:
    """S6: the core imports only the standard library and itself: never a model (impls.*),
    the suite (conformance.*), nor anything above impls/_core by a relative import."""
    depth = len(path.relative_to(CORE_DIR).parts)  # 1 for files directly in _core
    for line, module, level in imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
        if level == 0:
            assert module.split(".")[0] not in {"impls", "conformance"}, (path.name, line)
        else:
            assert level <= depth, f"{path.name} line {line} reaches outside impls/_core"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import socket", ["line 1: imports socket"]),
        ("import os, time as t", ["line 1: imports time"]),
        ("from select import select", ["line 1: imports select"]),
        ("from asyncio.events import get_event_loop", ["line 1: imports asyncio.events"]),
        ("def f():\n    import threading", ["line 2: imports threading"]),
        ("if TYPE_CHECKING:\n    import trio", ["line 2: imports trio"]),
        (
            "import _thread\nimport selectors",
            ["line 1: imports _thread", "line 2: imports selectors"],
        ),
        ("from . import time", []),  # a sibling module named time is not the clock
        ("import timeit\nimport collections", []),
    ],
)
def test_s6_the_import_scan_itself_catches_forbidden_imports(
    source: str, expected: list[str]
) -> None:
    """S6: the checker used above finds every form of import, and only forbidden ones."""
    assert forbidden_imports(source) == expected


def test_s6_the_dynamic_import_scan_itself_works() -> None:
    """S6: __import__('socket') and importlib are caught."""
    assert dynamic_imports("s = __import__('socket')") == ["line 1: __import__"]
    assert dynamic_imports("import importlib") == ["line 1: imports importlib"]
    assert dynamic_imports("import enum") == []
