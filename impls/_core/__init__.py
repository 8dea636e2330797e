"""The I/O-free core shared by every model: containing no networking code at all.

Bytes and ids go in, decisions come out. Nothing here imports socket, select, selectors,
threading or trio (a test in tests/core/ enforces it), so every rule that the five models must
share -- never-reused ids, partial-send accounting, the session's whole lifecycle from accept to
release, the accept back-off -- is written once and
tested without a socket. The objects are not thread-safe: each model serialises access to them
in the way that is natural for that model (one loop thread, or a lock).
"""

from .accept import ACCEPT_RETRY as ACCEPT_RETRY
from .accept import AcceptBackoff as AcceptBackoff
from .accept import accept_retry_delay as accept_retry_delay
from .callbacks import run_callback as run_callback
from .ids import MAX_SESSION_ID as MAX_SESSION_ID
from .ids import IdAllocator as IdAllocator
from .lifecycle import Action as Action
from .lifecycle import CloseReason as CloseReason
from .lifecycle import IoCount as IoCount
from .lifecycle import Lifecycle as Lifecycle
from .lifecycle import LifecycleError as LifecycleError
from .lifecycle import Mechanics as Mechanics
from .lifecycle import Seen as Seen
from .lifecycle import SessionState as SessionState
from .lifecycle import admit_send as admit_send
from .lifecycle import advance as advance
from .lifecycle import next_timeout as next_timeout
from .pool import SessionPool as SessionPool
from .ring import RingBuffer as RingBuffer
from .send_queue import SendQueue as SendQueue
from .table import SessionTable as SessionTable

__all__ = [
    "ACCEPT_RETRY",
    "MAX_SESSION_ID",
    "AcceptBackoff",
    "Action",
    "CloseReason",
    "IdAllocator",
    "IoCount",
    "Lifecycle",
    "LifecycleError",
    "Mechanics",
    "RingBuffer",
    "Seen",
    "SendQueue",
    "SessionPool",
    "SessionState",
    "SessionTable",
    "accept_retry_delay",
    "admit_send",
    "advance",
    "next_timeout",
    "run_callback",
]
