"""Hypothesis profiles for the suite, in one place.

Pick one with `--hypothesis-profile=NAME`; without it the suite uses `conformance`. The suite's
tests take their settings from `suite_settings()`, so choosing a profile changes them and
nothing else in your session (the plugin is installed for every pytest run in the
environment, so it must not change Hypothesis' global default).
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis.errors import InvalidArgument

__all__ = ["PROFILES", "SHRINK_BUDGETS", "activate", "shrink_budget", "suite_settings"]

DEFAULT = "conformance"

_COMMON = {
    # Each example starts a server and moves real bytes over loopback: how long that takes
    # depends on the machine and the scheduler, never on the input, so Hypothesis' per-example
    # deadline would only report noise. Our own deadlines (Timeouts) bound every wait.
    "deadline": None,
    # Same reason: an example that takes 200 ms is normal here, not a slow data generator.
    "suppress_health_check": [HealthCheck.too_slow],
    # A failure prints the blob that replays it: @reproduce_failure(...).
    "print_blob": True,
    # No "explain" phase: it re-runs the failing example hundreds of times to say which
    # inputs did not matter, which costs a minute when each run opens hundreds of sockets.
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
}

PROFILES: dict[str, settings] = {
    # The default, also used in CI: enough examples to hit every clause's classic bug in
    # seconds, few enough that the whole suite runs in under a minute per implementation.
    DEFAULT: settings(max_examples=8, **_COMMON),  # type: ignore[arg-type]
    # A quick look while developing an implementation.
    "fast": settings(max_examples=3, **_COMMON),  # type: ignore[arg-type]
    # Prints every example as it runs.
    "debug": settings(max_examples=8, verbosity=Verbosity.verbose, **_COMMON),  # type: ignore[arg-type]
    # Deep runs before a release: minutes per implementation.
    "thorough": settings(max_examples=100, **_COMMON),  # type: ignore[arg-type]
    # Is this implementation caught at all? The default's examples, but the first failing one
    # is the verdict, unshrunk: shrinking makes a report readable, and here nobody reads it
    # (tests/mutants: each mutant must be caught on its clause; a kill no longer waits out
    # the 15 s shrink budget).
    "kill": settings(max_examples=8, **{  # type: ignore[arg-type]
        **_COMMON, "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]}),
}

# Seconds of failing examples a test may spend shrinking (see `_run.ShrinkingStopped`):
# most failing examples wait out a deadline, so shrinking is what makes a bug slow to report.
# Profiles not listed here (thorough, debug, your own) shrink as far as Hypothesis goes.
SHRINK_BUDGETS: dict[str, float] = {DEFAULT: 15.0, "fast": 5.0}

for _name, _settings in PROFILES.items():
    settings.register_profile(_name, _settings)

_active = DEFAULT


def activate(name: str | None) -> str:
    """Use profile `name` (any registered Hypothesis profile) for the suite; None = default."""
    global _active
    _active = name or DEFAULT
    settings.get_profile(_active)  # raises InvalidArgument for an unknown name
    return _active


def active() -> str:
    return _active


def shrink_budget() -> float | None:
    """The active profile's shrink budget in seconds; None: unbounded."""
    return SHRINK_BUDGETS.get(_active)


def is_registered(name: str) -> bool:
    try:
        settings.get_profile(name)
    except InvalidArgument:
        return False
    return True


def suite_settings(weight: float = 1.0) -> settings:
    """Settings for one property: the active profile, with `weight` times its examples.

    Heavy properties (thousands of connections per example) use a weight below 1.
    """
    parent = settings.get_profile(_active)
    return settings(parent, max_examples=max(1, round(parent.max_examples * weight)))
