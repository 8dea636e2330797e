"""The C reference server, built with the system compiler and run through the exec adapter.

`impls/c/session_server.c` is the epoll model written as a C program that speaks the wire
protocol (docs/wire-protocol.md). This module compiles it on first use and hands the suite
the exec adapter's factory for the binary:

    pytest conformance --impl=impls.c:make_server

The binary is cached under the hash of everything that goes into it (source, compiler,
flags), so a run compiles it once, and pytest-xdist's workers share it: each compiles into a
temporary file and renames it into place, an atomic step, so nobody ever runs half a binary.
Where there is no C compiler, the tests that need it are skipped, saying so.

The C mutants (`tests/mutants/m_sNN_c_*.py`) are the same source with one edit: `mutant()`
applies it, checking that the text it replaces occurs exactly once, so a mutant whose target
was rewritten fails at once with a message instead of quietly testing the correct server.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from conformance.api import ServerConfig, ServerFactory, SessionHandler, SessionServer

__all__ = ["CFLAGS", "SOURCE", "build", "compiler", "make_server", "mutant"]

SOURCE = Path(__file__).with_name("session_server.c")
# -Werror: a warning in teaching material is a bug report waiting to happen.
CFLAGS = ("-std=c11", "-O2", "-Wall", "-Wextra", "-Werror")
# A mutant removes code, which can leave a helper unused: not the bug it is about.
MUTANT_CFLAGS = ("-Wno-unused-function", "-Wno-unused-variable", "-Wno-unused-but-set-variable")
# A compile takes ~0.5 s; this bounds a compiler that hangs.
COMPILE_TIMEOUT = 120.0


def compiler() -> str | None:
    """The C compiler to use ($CC, else `cc`), or None if there is none on PATH."""
    return shutil.which(os.environ.get("CC", "cc"))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "io-conformance" / "c"


def _no_compiler() -> str:
    return (f"no C compiler ({os.environ.get('CC', 'cc')!r} is not on PATH): the C server and "
            "its mutants need one to be built")


class _Unbuilt:
    """What the factory returns outside a test when there is no compiler: the plugin's
    interface check at start-up builds one server and must not fail the whole run; each test
    then calls the factory again and is skipped."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    def start(self, handler: SessionHandler, host: str = "127.0.0.1",
              port: int = 0) -> tuple[str, int]:
        raise RuntimeError(_no_compiler())

    def send(self, session_id: int, data: bytes) -> bool:
        return False

    def disconnect(self, session_id: int) -> bool:
        return False

    def stop(self) -> None:
        pass


@functools.cache
def build(source: str | None = None, name: str = "session_server",
          extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile `source` (the text of session_server.c by default) and return the binary.

    Cached on disk by a hash of the compiler, the flags and the source, and in this process
    by the arguments (the suite builds a server per scenario). Without a compiler, inside a
    test: pytest.skip, with the reason."""
    cc = compiler()
    if cc is None:
        import pytest  # only a test run gets here

        pytest.skip(_no_compiler())
    text = SOURCE.read_text() if source is None else source
    flags = [*CFLAGS, *extra_flags]
    key = hashlib.sha256("\0".join([cc, *flags, text]).encode()).hexdigest()[:16]
    cache = _cache_dir()
    binary = cache / f"{name}-{key}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        c_file = Path(work) / f"{name}.c"
        c_file.write_text(text)
        out = Path(work) / name
        proc = subprocess.run([cc, *flags, "-o", str(out), str(c_file)], capture_output=True,
                              text=True, timeout=COMPILE_TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join([cc, *flags])} failed on {name}.c "
                               f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        # Atomic: another worker's rename of the same bytes may win; either is whole.
        os.replace(out, binary)
    return binary


def _serve(source: str | None, name: str, config: ServerConfig,
           extra_flags: tuple[str, ...] = ()) -> SessionServer:
    if compiler() is None and "PYTEST_CURRENT_TEST" not in os.environ:
        return _Unbuilt(config)  # the plugin's start-up check, not a test: see _Unbuilt
    from conformance import exec_server

    return exec_server([str(build(source, name, extra_flags))])(config)


def make_server(config: ServerConfig) -> SessionServer:
    """The suite's factory: the C server, through the exec adapter."""
    return _serve(None, "session_server", config)


def mutant(old: str, new: str, name: str) -> ServerFactory:
    """A factory for session_server.c with `old` replaced by `new` (one classic bug).

    `old` must occur exactly once in the source: checked when the mutant is built, so a
    mutant whose target moved fails with this message, not by passing as the correct server.
    """

    def factory(config: ServerConfig) -> SessionServer:
        text = SOURCE.read_text()
        count = text.count(old)
        if count != 1:
            raise AssertionError(f"mutant {name}: the text to replace occurs {count} times in "
                                 f"{SOURCE.name} (must be exactly once): {old!r}")
        return _serve(text.replace(old, new), name, config, MUTANT_CFLAGS)

    return factory
