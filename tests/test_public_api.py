"""The public surface of `conformance` is pinned: additions are deliberate, removals breaking."""

from __future__ import annotations

import conformance
import conformance.api

PUBLIC = {
    "CLAUSES", "ConformanceFailure", "Harness", "Impl", "ImplError", "Peer", "Recorder",
    "Scenario", "ServerConfig", "ServerFactory", "SessionHandler", "SessionServer", "Stream",
    "SuiteEnvironmentError", "Timeouts", "TraceEvent", "Violation", "check_trace", "resolve",
    "exec_server",
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


def test_faults_module_is_the_opt_in_surface():
    """What an implementation that opts in to fault injection uses (docs/plugging-in.md §7)."""
    import conformance.faults as faults

    assert set(faults.__all__) == {"Fault", "FaultInjector", "FaultPlan", "SessionFaults", "Step"}
    for method in ("wrap_socket", "wrap_stream", "hold", "next"):
        assert getattr(faults.FaultInjector, method).__doc__, method


def test_reference_implementations_opt_in_to_fault_injection():
    from conformance import ServerConfig, resolve
    from impls import BUILTINS

    for name in BUILTINS:
        server = resolve(name).build(ServerConfig())
        assert callable(getattr(server, "inject_faults", None)), name


def test_reference_implementations_satisfy_the_protocol():
    from conformance import ServerConfig, SessionServer, resolve
    from impls import BUILTINS

    for name in BUILTINS:
        server = resolve(name).build(ServerConfig())
        assert isinstance(server, SessionServer), name
