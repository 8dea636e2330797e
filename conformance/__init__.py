"""io-conformance: does a network I/O-model implementation keep the Session contract?

General layout:

- `api` is the contract: `SessionServer` (what you implement), `SessionHandler` (the
  application the suite plays), `ServerConfig`, `ServerFactory`. Its docstrings are normative.
- `_trace` records every callback and call; `_checker` judges S1-S4 from a trace with no I/O
  and renders failures as per-session timelines.
- `_peers` drives real TCP clients on 127.0.0.1; `_harness` runs a scenario against one
  implementation under deadlines; `_environment` tells the machine's failures (out of ports,
  descriptors, threads: `SuiteEnvironmentError`) from the implementation's.
- `plugin` is the pytest plugin (`--impl`), `_loading` turns a name into a factory,
  `_profiles` holds the Hypothesis profiles, `_report` the implementation x clause table.
- `suite/` holds the properties themselves: `pytest conformance --impl=NAME`.

Everything not re-exported here is private and may change.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .api import ServerConfig as ServerConfig
from .api import ServerFactory as ServerFactory
from .api import SessionHandler as SessionHandler
from .api import SessionServer as SessionServer

if TYPE_CHECKING:
    from ._checker import ConformanceFailure as ConformanceFailure
    from ._checker import Stream as Stream
    from ._checker import Violation as Violation
    from ._checker import check_trace as check_trace
    from ._clauses import CLAUSES as CLAUSES
    from ._environment import SuiteEnvironmentError as SuiteEnvironmentError
    from ._exec import exec_server as exec_server
    from ._harness import Harness as Harness
    from ._harness import Scenario as Scenario
    from ._harness import Timeouts as Timeouts
    from ._loading import Impl as Impl
    from ._loading import ImplError as ImplError
    from ._loading import resolve as resolve
    from ._peers import Peer as Peer
    from ._trace import Recorder as Recorder
    from ._trace import TraceEvent as TraceEvent

# The plugin imports this package in every pytest run of the environment, so the heavier
# modules (Hypothesis, the harness) load on first use rather than at import (PEP 562).
_LAZY = {
    "ConformanceFailure": "_checker",
    "Stream": "_checker",
    "Violation": "_checker",
    "check_trace": "_checker",
    "CLAUSES": "_clauses",
    "SuiteEnvironmentError": "_environment",
    "exec_server": "_exec",
    "Harness": "_harness",
    "Scenario": "_harness",
    "Timeouts": "_harness",
    "Impl": "_loading",
    "ImplError": "_loading",
    "resolve": "_loading",
    "Peer": "_peers",
    "Recorder": "_trace",
    "TraceEvent": "_trace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)


__all__ = [
    "CLAUSES",
    "ConformanceFailure",
    "Harness",
    "Impl",
    "ImplError",
    "Peer",
    "Recorder",
    "Scenario",
    "ServerConfig",
    "ServerFactory",
    "SessionHandler",
    "SessionServer",
    "Stream",
    "SuiteEnvironmentError",
    "Timeouts",
    "TraceEvent",
    "Violation",
    "check_trace",
    "exec_server",
    "resolve",
]
