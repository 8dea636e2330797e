"""The C server's build step (impls/c): the cache, the mutants' source edits, the skip.

The C server itself is tested the way every implementation is: by the suite
(`pytest conformance --impl=impls.c:make_server`) and by its mutants (tests/mutants/m_sNN_c_*).
"""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path

import pytest

import impls.c
from conformance._wire import FrameReader, Hello
from conformance.api import ServerConfig

MUTANTS = Path(__file__).resolve().parents[1] / "mutants"
C_MUTANTS = sorted(p.stem for p in MUTANTS.glob("m_s*_c_*.py"))

needs_cc = pytest.mark.skipif(impls.c.compiler() is None, reason="no C compiler on PATH")


@pytest.mark.parametrize("mutant", C_MUTANTS)
def test_each_c_mutant_edits_one_place_of_the_source(mutant):
    """A mutant's `OLD` occurs exactly once in session_server.c: caught here, in a second,
    when an edit of the server moves a mutant's target (not in its slow kill run)."""
    module = importlib.import_module(f"tests.mutants.{mutant}")
    source = impls.c.SOURCE.read_text()
    assert source.count(module.OLD) == 1, f"{mutant}.OLD must occur once: {module.OLD!r}"
    assert module.OLD != module.NEW


def test_a_mutant_whose_target_is_gone_fails_with_a_sentence():
    factory = impls.c.mutant("no such line", "x", "m_s99_c_example")
    with pytest.raises(AssertionError, match=r"occurs 0 times in .* \(must be exactly once\)"):
        factory(ServerConfig())


@needs_cc
def test_builds_are_cached_by_source_and_the_binary_says_hello(tmp_path, monkeypatch):
    """Same source, same binary (no second compile); another source, another binary. The
    binary writes HELLO first and only frames to stdout, and exits 0 at EOF on stdin."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = impls.c.SOURCE.read_text() + f"\n/* {tmp_path.name} */\n"  # a key of its own
    first = impls.c.build(source, "test_build")
    assert first.parent == tmp_path / "io-conformance" / "c"
    assert impls.c.build(source, "test_build") == first
    other = impls.c.build(source + "/* another */\n", "test_build")
    assert other != first and other.exists() and os.access(other, os.X_OK)
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, other.name])
    proc = subprocess.run([first], input=b"", capture_output=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    frames = []
    reader = FrameReader(_reader(proc.stdout))
    while (frame := reader.next()) is not None:
        frames.append(frame)
    assert len(frames) == 1 and isinstance(frames[0], Hello) and frames[0].version == 1


def _reader(data: bytes):
    view = memoryview(data)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        chunk = bytes(view[pos:pos + n])
        pos += len(chunk)
        return chunk

    return read


def test_without_a_compiler_a_test_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.raises(pytest.skip.Exception, match=r"no C compiler .*no-such-compiler"):
        impls.c.make_server(ServerConfig())
