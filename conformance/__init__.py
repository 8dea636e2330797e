"""io-conformance: does a network I/O-model implementation keep the Session contract?

General layout:

- `api` is the contract: `SessionServer` (what you implement), `SessionHandler` (the
  application the suite plays), `ServerConfig`, `ServerFactory`. Its docstrings are normative.
- `_trace` records every callback and call; `_checker` judges S1-S4 from a trace with no I/O
  and renders failures as per-session timelines.
- `_peers` drives real TCP clients on 127.0.0.1; `_scenario` is what a property calls (the
  test vocabulary: `Scenario`); `_timeouts` holds its deadlines; `_harness` runs each scenario
  against one implementation under the run protocol of `_run` (watchdog, thread deaths, hung
  servers, shrink budget); `_environment` tells the machine's failures (out of ports,
  descriptors, threads: `SuiteEnvironmentError`) from the implementation's.
- `plugin` is the pytest plugin (`--impl`), `_loading` turns a name into a factory,
  `_profiles` holds the Hypothesis profiles, `_report` the implementation x clause table.
- `suite/` holds the properties themselves: `pytest conformance --impl=NAME`.

What is re-exported here is what a user of the suite needs: the interface to implement, the
fault-injection opt-in (`FaultInjector`, see docs/plugging-in.md), the clauses (`CLAUSES`) and
the two failures a run reports (`ConformanceFailure`: the implementation broke a clause;
`SuiteEnvironmentError`: the machine did). `tests/test_public_api.py` pins it. Everything else
is private and may change.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .api import ServerConfig as ServerConfig
from .api import ServerFactory as ServerFactory
from .api import SessionHandler as SessionHandler
from .api import SessionServer as SessionServer

if TYPE_CHECKING:
    from ._checker import ConformanceFailure as ConformanceFailure
    from ._clauses import CLAUSES as CLAUSES
    from ._environment import SuiteEnvironmentError as SuiteEnvironmentError
    from ._exec import exec_server as exec_server
    from .faults import FaultInjector as FaultInjector

# The plugin imports this package in every pytest run of the environment, so the heavier
# modules load on first use rather than at import (PEP 562).
_LAZY = {
    "ConformanceFailure": "_checker",
    "CLAUSES": "_clauses",
    "SuiteEnvironmentError": "_environment",
    "FaultInjector": "faults",
    "exec_server": "_exec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)


__all__ = [
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
