"""The built-in implementations are plugged in as a third party's are: entry points of the group
`conformance.impls`, declared once, in pyproject.toml."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

from conformance import _loading
from conformance._loading import ENTRY_POINT_GROUP, ImplError, builtins, parse_impl_option

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def declared() -> dict[str, str]:
    with PYPROJECT.open("rb") as file:
        return dict(tomllib.load(file)["project"]["entry-points"][ENTRY_POINT_GROUP])


def not_installed(name: str) -> importlib.metadata.Distribution:
    raise importlib.metadata.PackageNotFoundError(name)


def test_the_builtins_are_the_entry_points_pyproject_declares() -> None:
    assert builtins() == declared()
    assert len(builtins()) == 5


def test_impl_all_is_the_builtins_in_name_order() -> None:
    assert parse_impl_option("all") == parse_impl_option(None) == sorted(declared())
    # `all` in a list: every built-in, then the others, each once
    assert parse_impl_option("all,mymod:f,select") == [*sorted(declared()), "mymod:f"]


def test_from_a_checkout_never_installed_the_builtins_come_from_its_pyproject(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    assert builtins() == declared()


def test_with_no_builtins_to_find_impl_all_says_to_install_the_package(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    monkeypatch.setattr(_loading, "_declared_in_checkout", dict)
    with pytest.raises(ImplError, match=r"not installed here: run `pip install -e \.`"):
        parse_impl_option("all")
