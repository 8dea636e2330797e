"""From an `--impl` value to a server factory, with errors that say what to do.

A name is looked up in this order: a built-in reference implementation, an entry point in the
group `conformance.impls` (how an installed package offers its own), then a literal
`package.module:factory`. The built-ins are themselves entry points of that group, declared
once in pyproject.toml, and found as a third party's are (see `builtins`). Every failure
raises `ImplError` with one paragraph that names what is wrong and lists the alternatives; the
plugin turns it into a usage error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ._calls import bounded_call
from .api import INTERFACE_METHODS, ServerConfig, ServerFactory, SessionServer

__all__ = ["ENTRY_POINT_GROUP", "Impl", "ImplError", "available", "parse_impl_option", "resolve"]

ENTRY_POINT_GROUP = "conformance.impls"

_HOW_TO_NAME_YOURS = (
    "To test your own implementation, name its factory as 'package.module:factory' (a callable "
    "that takes a conformance.api.ServerConfig and returns an object with the methods "
    f"{', '.join(INTERFACE_METHODS)}), or register it under the entry-point group "
    f"'{ENTRY_POINT_GROUP}'."
)


class ImplError(Exception):
    """An `--impl` value that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Impl:
    """An implementation under test: a name for test ids, and how to build it."""

    name: str
    factory: ServerFactory = field(compare=False)
    overrides: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def config(self, **changes: Any) -> ServerConfig:
        """The ServerConfig a test asks for, with this impl's fixed overrides on top."""
        return ServerConfig(**{**changes, **self.overrides})

    def build(self, config: ServerConfig) -> SessionServer:
        return self.factory(config)


# The distribution that ships the suite and the reference implementations (pyproject.toml).
DISTRIBUTION = "io-conformance"


def builtins() -> dict[str, str]:
    """The reference implementations, name -> "module:factory", sorted by name (the order of
    `--impl=all`). They are this package's own entry points in the group `conformance.impls`,
    declared once in pyproject.toml: read from the installed package's metadata, or -- run
    from a checkout that was never installed (`pip install -e .`) -- from the checkout's
    pyproject.toml. Neither: none (`--impl=all` then says to install the package)."""
    try:
        found = {ep.name: ep.value for ep in
                 importlib.metadata.distribution(DISTRIBUTION).entry_points
                 if ep.group == ENTRY_POINT_GROUP}
    except importlib.metadata.PackageNotFoundError:
        found = _declared_in_checkout()
    return dict(sorted(found.items()))


def _declared_in_checkout() -> dict[str, str]:
    """The entry points of `ENTRY_POINT_GROUP` in the pyproject.toml beside this package."""
    try:
        with (Path(__file__).resolve().parent.parent / "pyproject.toml").open("rb") as file:
            project = tomllib.load(file).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    if project.get("name") != DISTRIBUTION:
        return {}
    return dict(project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {}))


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Every entry point of the group, the built-ins' included when the package is installed."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Every name `--impl` accepts besides a literal module:factory."""
    return list(dict.fromkeys([*builtins(), *_entry_points()]))


def parse_impl_option(value: str | None) -> list[str]:
    """`None` or `all` -> every built-in; otherwise a comma-separated list of specs, in which
    `all` stands for every built-in too (`all,mymod:factory`: yours beside the references)."""
    if value is not None and "," in value and value.strip(" ,"):
        return list(dict.fromkeys(
            name for part in value.split(",") if part.strip()
            for name in parse_impl_option(part)))
    if value is None or value.strip() == "all":
        if not builtins():
            raise ImplError(
                f"--impl=all: no built-in implementations found. They are declared as entry "
                f"points of the {DISTRIBUTION} package, which is not installed here: run "
                f"`pip install -e .` in its checkout, or name an implementation. "
                + _HOW_TO_NAME_YOURS)
        return list(builtins())
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise ImplError(f"--impl={value!r} names no implementation. {_choices()}")
    return list(dict.fromkeys(names))


def _choices() -> str:
    missing = "" if builtins() else (
        f"(The built-ins are entry points of the {DISTRIBUTION} package, which is not "
        f"installed here: `pip install -e .` in its checkout.) ")
    return (
        f"Available: {', '.join(available()) or 'none'} (or 'all' for every built-in). "
        + missing + _HOW_TO_NAME_YOURS
    )


def resolve(spec: str | tuple[str, Mapping[str, Any]], impl_dir: str | None = None) -> Impl:
    """Turn `"select"`, `("select", {"workers": 4})` or `"pkg.mod:f"` into an `Impl`.

    The second form fixes ServerConfig fields for every test (the fixture-override form).
    `impl_dir`: where a `module:factory` is imported from first (the plugin passes the
    directory pytest was run in, or `--impl-dir`). Raises ImplError with an actionable message.
    """
    name, overrides = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
    unknown = set(overrides) - set(ServerConfig.__dataclass_fields__)
    if unknown:
        raise ImplError(
            f"impl {name!r}: {', '.join(sorted(unknown))} is not a ServerConfig field; "
            f"the fields are {', '.join(ServerConfig.__dataclass_fields__)}."
        )
    from ._exec import parse_exec  # `exec:COMMAND`: a program over the wire protocol

    program = parse_exec(name)
    if program is not None:
        return Impl(name if not overrides else f"{name}({_describe(overrides)})", program,
                    overrides)
    target = builtins().get(name)
    if target is None:
        entry_point = _entry_points().get(name)
        target = entry_point.value if entry_point is not None else None
    if target is None:
        if ":" not in name:
            raise ImplError(f"--impl={name}: no implementation is called {name!r}. {_choices()}")
        target = name
    factory = _load(name, target, impl_dir)
    label = name if not overrides else f"{name}({_describe(overrides)})"
    return Impl(label, factory, overrides)


def _describe(overrides: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def _load(name: str, target: str, impl_dir: str | None = None) -> ServerFactory:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ImplError(
            f"--impl={name}: {target!r} is not of the form 'package.module:factory'. "
            + _HOW_TO_NAME_YOURS
        )
    if impl_dir is not None and impl_dir not in sys.path:
        # As an app server finds its app (uvicorn's --app-dir): plain `pytest` does not put
        # the directory it runs in on sys.path, only `python -m pytest` does. It stays there,
        # so that the module's own imports, even late ones, find their neighbours.
        sys.path.insert(0, impl_dir)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ImplError(
            f"--impl={name}: cannot import module {module_name!r} "
            f"({type(exc).__name__}: {exc}). Check the spelling, and that the package is "
            "installed in this environment (`pip install -e path/to/it`) or in the directory "
            f"modules are imported from first ({impl_dir or 'the directory you run pytest in'}; "
            "--impl-dir=DIR to choose another)."
        ) from exc
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
            raise ImplError(
                f"--impl={name}: module {module_name!r} has no attribute {attr!r}. "
                f"Callables it does have: {', '.join(sorted(names)[:12]) or 'none'}. "
                + _HOW_TO_NAME_YOURS
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ImplError(
            f"--impl={name}: {target} is a {type(obj).__name__}, not a factory. "
            + _HOW_TO_NAME_YOURS
        )
    return cast(ServerFactory, obj)


def check_interface(impl: Impl) -> None:
    """Build one server (without starting it) and check it has the interface methods."""
    target = getattr(impl.factory, "__qualname__", repr(impl.factory))
    try:
        signature: inspect.Signature | None = inspect.signature(impl.factory)
    except (TypeError, ValueError):
        signature = None  # e.g. a builtin without a signature: find out by calling it
    if signature is not None:
        try:
            signature.bind(ServerConfig())
        except TypeError as exc:
            raise ImplError(
                f"--impl={impl.name}: {target}{signature} cannot be called with a ServerConfig "
                f"({exc}), so it is not a server factory. " + _HOW_TO_NAME_YOURS
            ) from exc
    try:
        server = impl.build(impl.config())
    except Exception as exc:
        raise ImplError(
            f"--impl={impl.name}: calling {target}(ServerConfig()) raised "
            f"{type(exc).__name__}: {exc}. A factory must build an unstarted server without "
            "doing I/O. " + _HOW_TO_NAME_YOURS
        ) from exc
    missing = [m for m in INTERFACE_METHODS if not callable(getattr(server, m, None))]
    if missing:
        raise ImplError(
            f"--impl={impl.name}: {target}(ServerConfig()) returned a "
            f"{type(server).__name__}, which lacks {', '.join(missing)}. A server needs "
            f"{', '.join(INTERFACE_METHODS)} (see conformance/api.py, SessionServer)."
        )


def bound_address(name: str, returned: object) -> tuple[str, int]:
    """What start() returned, checked: the (host, port) it bound."""
    try:
        host, port = cast(tuple[object, object], returned)
        return str(host), int(cast(int, port))
    except (TypeError, ValueError):
        raise ImplError(
            f"--impl={name}: start() returned {returned!r}; it must return the (host, port) "
            "it actually bound, e.g. `return self._listener.getsockname()[:2]` (the suite "
            "starts servers on port 0 and connects to the port you return)."
        ) from None


def smoke_start(impl: Impl, timeout: float) -> None:
    """Start and stop one server with a do-nothing handler, to check that start() returns the
    address it bound: without one no test can connect, so that is a usage error, like a
    missing method. A start() or stop() that hangs or raises is not checked here: that is the
    implementation's failure, which the tests report as a verdict (S10, S11) with the stack."""

    class Idle:
        def on_connect(self, session_id: int, peer: tuple[str, int]) -> None: ...
        def on_recv(self, session_id: int, data: bytes) -> None: ...
        def on_release(self, session_id: int) -> None: ...

    server = impl.build(impl.config())
    outcome, stuck = bounded_call(lambda: server.start(Idle()), timeout)
    if stuck is not None:
        return  # stop() on a server still inside start() would race it
    try:
        if not isinstance(outcome, BaseException):
            bound_address(impl.name, outcome)
    finally:
        bounded_call(server.stop, timeout)  # a hang or an error here: the tests report it
