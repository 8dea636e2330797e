"""The public surface of `conformance` is pinned: additions are deliberate, removals breaking."""

from __future__ import annotations

import conformance
import conformance.api

PUBLIC = {
    "CLAUSES", "ConformanceFailure", "Harness", "Impl", "ImplError", "Peer", "Recorder",
    "Scenario", "ServerConfig", "ServerFactory", "SessionHandler", "SessionServer", "Stream",
    "Timeouts", "TraceEvent", "Violation", "check_trace", "resolve",
}


def test_all_is_pinned():
    assert set(conformance.__all__) == PUBLIC


def test_every_public_name_resolves():
    for name in conformance.__all__:
        assert getattr(conformance, name) is not None, name


def test_api_module_is_the_contract():
    assert set(conformance.api.__all__) == {
        "ServerConfig", "ServerFactory", "SessionHandler", "SessionServer"}
    for method in conformance.api.INTERFACE_METHODS:
        assert getattr(conformance.api.SessionServer, method).__doc__, method


def test_reference_implementations_satisfy_the_protocol():
    from conformance import ServerConfig, SessionServer, resolve
    from impls import BUILTINS

    for name in BUILTINS:
        server = resolve(name).build(ServerConfig())
        assert isinstance(server, SessionServer), name
