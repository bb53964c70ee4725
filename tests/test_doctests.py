"""The examples in lq's docstrings run and print what they show (numpydoc ``Examples``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import lq

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(lq.__path__, prefix="lq.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples in {name} failed"


def test_the_analytics_examples_are_there():
    """Issue 4 asks for a runnable example in every public analytics docstring."""
    finder = doctest.DocTestFinder()
    n = sum(
        len(t.examples)
        for name in MODULES
        if name.startswith("lq.analytics")
        for t in finder.find(importlib.import_module(name))
    )
    assert n >= 40
