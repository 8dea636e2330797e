"""The public surface of `conformance` is pinned: additions are deliberate, removals breaking."""

from __future__ import annotations

import conformance
import conformance.api

# What a user needs: the interface (conformance.api), the fault-injection opt-in, the clauses
# and the two failures a run reports. Not the harness's internals (Harness, Scenario,
# Recorder, ...): those are private and may change.
PUBLIC = [
    "CLAUSES",
    "ConformanceFailure",
    "FaultInjector",
    "ServerConfig",
    "ServerFactory",
    "SessionHandler",
    "SessionServer",
    "SuiteEnvironmentError",
    "exec_server",
]


def test_all_is_pinned():
    assert conformance.__all__ == PUBLIC


def test_no_internal_is_reachable_from_the_package():
    for name in ("Harness", "Scenario", "Recorder", "Timeouts", "resolve", "check_trace"):
        assert not hasattr(conformance, name), name


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
    from conformance import ServerConfig
    from conformance._loading import builtins, resolve

    for name in builtins():
        server = resolve(name).build(ServerConfig())
        assert callable(getattr(server, "inject_faults", None)), name


def test_reference_implementations_satisfy_the_protocol():
    from conformance import ServerConfig, SessionServer
    from conformance._loading import builtins, resolve

    for name in builtins():
        server = resolve(name).build(ServerConfig())
        assert isinstance(server, SessionServer), name
