"""S6, S10 in the core: the one accept back-off of all five models (impls/_core/accept.py)."""

from __future__ import annotations

import errno

import pytest

from impls._core import ACCEPT_RETRY, AcceptBackoff, accept_retry_delay


@pytest.mark.parametrize("error", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
def test_s6_s10_out_of_descriptors_backs_off(error: int) -> None:
    """S6, S10: the connection still waits in the backlog: leave the listener ACCEPT_RETRY
    seconds (no spin), then accept again (no stranded backlog)."""
    assert accept_retry_delay(error) == ACCEPT_RETRY > 0


@pytest.mark.parametrize("error", [errno.ECONNABORTED, errno.EPROTO, errno.EINTR])
def test_s10_a_failed_connection_does_not_stop_the_next(error: int) -> None:
    """S10: an error of one incoming connection: accept the next at once."""
    assert accept_retry_delay(error) == 0.0


@pytest.mark.parametrize("error", [None, errno.EINVAL, 12345])
def test_s6_an_unknown_error_backs_off_rather_than_spins(error: int | None) -> None:
    """S6: an error the policy does not know costs a pause, never a spinning core."""
    assert accept_retry_delay(error) == ACCEPT_RETRY


def test_s6_s10_a_loop_knows_when_to_accept_again() -> None:
    """S6, S10: after EMFILE at t=10 the listener is not due until t=10+ACCEPT_RETRY, and the
    loop has that time to wake for; after ECONNABORTED nothing changes."""
    backoff = AcceptBackoff()
    assert backoff.due(0.0) and backoff.wake_at(0.0) is None
    assert backoff.failed(errno.ECONNABORTED, 10.0) == 0.0
    assert backoff.due(10.0)
    assert backoff.failed(errno.EMFILE, 10.0) == ACCEPT_RETRY
    assert not backoff.due(10.0)
    assert backoff.wake_at(10.0) == 10.0 + ACCEPT_RETRY
    assert backoff.due(10.0 + ACCEPT_RETRY)
    assert backoff.wake_at(10.0 + ACCEPT_RETRY) is None
