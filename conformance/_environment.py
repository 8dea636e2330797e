"""When the suite's own machinery fails: an environment error, never a verdict.

The suite's peers, selectors and helper threads run on the same machine as the server under
test. When one of *them* cannot get a resource -- a local port, a file descriptor, a thread --
the implementation did nothing wrong, and charging a clause for it would be a false failure.
Such errors become `SuiteEnvironmentError`: a BaseException, so Hypothesis reports it at once
instead of shrinking (every re-run would hit the same wall), which the plugin reports as a
pytest error with a hint, apart from the clause verdicts (docs/plugging-in.md section 4).

What the *server* does to a connection is the implementation's: a connect() that is refused
or times out because the listener is closed or its backlog is full is a clause failure (S10),
not an environment error. `classify()` draws that line by errno.
"""

from __future__ import annotations

import errno
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SuiteEnvironmentError", "environment_errors", "hint", "is_environmental",
           "somaxconn"]

# errnos that say the suite's side of the machine ran out of something or is not set up.
_ENVIRONMENT_ERRNOS = frozenset({
    errno.EADDRNOTAVAIL,  # no free local port for connect() (or bind())
    errno.EADDRINUSE,  # the same, from bind()
    errno.EMFILE,  # this process's descriptor limit
    errno.ENFILE,  # the system's file table
    errno.ENOBUFS,
    errno.ENOMEM,
    errno.ENETUNREACH,  # loopback is down (a fresh network namespace)
    errno.ENETDOWN,
    errno.EACCES,  # a firewall rule on loopback
    errno.EPERM,
})


class SuiteEnvironmentError(BaseException):
    """The suite's own sockets, threads or machine failed; the implementation is not judged.

    `what` is the suite's action that failed, `cause` the error, `hint` what to do about it.
    A BaseException so that Hypothesis neither shrinks it nor counts it as a falsifying
    example, and so that no `except Exception` in a test turns it into a verdict.
    """

    def __init__(self, what: str, cause: BaseException, hint: str) -> None:
        self.what, self.cause, self.hint = what, cause, hint
        super().__init__(
            f"environment error, not a verdict on the implementation: {what} failed "
            f"({type(cause).__name__}: {cause}). {hint}"
        )


def is_environmental(exc: BaseException) -> bool:
    """Whether `exc`, raised by the suite's own socket or thread call, is the machine's."""
    if isinstance(exc, OSError):
        return exc.errno in _ENVIRONMENT_ERRNOS
    # threading.Thread.start() when the process or the system cannot have another thread.
    return isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)


@contextmanager
def environment_errors(what: str) -> Iterator[None]:
    """Turn a machine failure of the suite's own `what` into a `SuiteEnvironmentError`."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if not is_environmental(exc):
            raise
        raise SuiteEnvironmentError(what, exc, hint(exc)) from exc


def hint(exc: BaseException) -> str:
    """What to do about `exc`, with the figures that show the cause."""
    code = exc.errno if isinstance(exc, OSError) else None
    if code in (errno.EADDRNOTAVAIL, errno.EADDRINUSE):
        low, high = _port_range()
        return (
            f"The machine ran out of local ports: {time_wait_count()} TCP sockets are in "
            f"TIME_WAIT and the ephemeral range is {low}-{high}. Wait a minute for them to "
            f"expire, or widen net.ipv4.ip_local_port_range (or run the suite in its own "
            f"network namespace: unshare -n, then `ip link set lo up`)."
        )
    if code == errno.EMFILE:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return (
            f"This process may open {soft} file descriptors (hard limit {hard}) and has "
            f"{_open_fds()} open. Raise the limit (ulimit -n) or run fewer workers (-n)."
        )
    if code == errno.ENFILE:
        return "The system's file table is full (fs.file-max); close other programs or raise it."
    if code in (errno.ENOBUFS, errno.ENOMEM):
        return "The kernel is short of memory for sockets; retry on a less loaded machine."
    if code in (errno.ENETUNREACH, errno.ENETDOWN):
        return ("Loopback is not reachable: in a fresh network namespace, bring it up first "
                "(`ip link set lo up`).")
    if code in (errno.EACCES, errno.EPERM):
        return "Connections on 127.0.0.1 are blocked: check the firewall rules for loopback."
    return (f"The process could not start another thread ({threading_limits()}); run fewer "
            "workers (-n) or raise the limit (ulimit -u).")


def time_wait_count() -> int | str:
    """TCP sockets in TIME_WAIT in this network namespace ("unknown" off Linux)."""
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as table:
                next(table, None)
                count += sum(1 for row in table if row.split()[3:4] == ["06"])
        except OSError:
            return "an unknown number of"
    return count


def somaxconn() -> int | None:
    """net.core.somaxconn: the kernel caps every listen() backlog at it (None: unknown)."""
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return None


def _port_range() -> tuple[str, str]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return "?", "?"
    return low, high


def _open_fds() -> int | str:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return "an unknown number"


def threading_limits() -> str:
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    limit = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    return f"{len(os.listdir('/proc/self/task')) if os.path.isdir('/proc/self/task') else '?'} " \
           f"threads running, ulimit -u {limit}"
