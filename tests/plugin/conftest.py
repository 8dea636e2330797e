"""Fixtures for the plugin's tests, which run pytest inside pytest (`pytester`).

`pytest_plugins = ["pytester"]` is declared in each test module, not here: pytest refuses
`pytest_plugins` in a conftest.py below the rootdir (a plain `pytest` would fail to collect).
"""

from __future__ import annotations

import pytest

from conformance import _profiles


@pytest.fixture(autouse=True)
def _keep_outer_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process run's pytest_configure activates its own suite profile; restore ours."""
    monkeypatch.setattr(_profiles, "_active", _profiles.active())


#: The repository's own rule (pyproject.toml) for the runs inside: there, too, a deprecation
#: from pytest or Hypothesis is an error, in-process and in a subprocess alike.
STRICT_INI = """
[pytest]
filterwarnings =
    error::pytest.PytestDeprecationWarning
    error::hypothesis.errors.HypothesisDeprecationWarning
"""


@pytest.fixture(autouse=True)
def _deprecations_are_errors_inside(request: pytest.FixtureRequest) -> None:
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester").makeini(STRICT_INI)
