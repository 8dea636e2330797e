"""A select server whose module declares a tiny FD_SETSIZE, so the benchmark's limit on
descriptors can be seen without opening a thousand connections (tests/tools/test_bench.py).
"""

from __future__ import annotations

from conformance.api import ServerConfig
from impls.select_ import SelectServer

# The benchmark reads FD_SETSIZE from the factory's module (as it reads impls/select_.py's).
FD_SETSIZE = 60


def make_server(config: ServerConfig) -> SelectServer:
    return SelectServer(config)
