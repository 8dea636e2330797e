"""A program-side leak for the exec adapter's S11 check: the select model, plus the classic
forgotten helper thread.

    def start(...):
        threading.Thread(target=self.report_stats).start()   # "it stops with the process"

stop() releases every session and closes every socket, so nothing the suite can see from
outside the process is wrong -- only the program's own thread count, which the adapter reads
from /proc at HELLO and after STOP (`ExecServer.leftovers_after_stop`), has grown.
"""

from __future__ import annotations

import threading

from conformance.api import ServerConfig, SessionHandler
from impls.select_ import SelectServer


class ForgottenThreadServer(SelectServer):
    def start(self, handler: SessionHandler, host: str = "127.0.0.1",
              port: int = 0) -> tuple[str, int]:
        address = super().start(handler, host, port)
        threading.Thread(target=threading.Event().wait, name="stats-reporter",
                         daemon=True).start()  # never told to stop, never joined
        return address


def make_server(config: ServerConfig) -> ForgottenThreadServer:
    return ForgottenThreadServer(config)
