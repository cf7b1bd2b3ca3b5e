"""The examples in percept's docstrings run: every module's doctests, one test per module.

Examples marked ``# doctest: +SKIP`` (those that need downloadable weights, data on disk or a GPU)
are not run; everything else must print what it shows. Modules are found by walking the installed
package, so a new module is covered without editing this file.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import warnings

import pytest

import percept

# Modules that import optional dependencies at module level (the toolkit's plots, the Triton kernels).
OPTIONAL = {"percept.ops.triton_kernels": "triton"}


def _module_names() -> list[str]:
    names = ["percept"]
    for info in pkgutil.walk_packages(percept.__path__, prefix="percept."):
        if not info.name.endswith(".__main__"):  # importing it runs the command line
            names.append(info.name)
    return sorted(names)


def _import(name: str):
    needs = OPTIONAL.get(name)
    if needs:
        pytest.importorskip(needs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # old module paths kept as shims
        return importlib.import_module(name)


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples(name):
    module = _import(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name) if t.examples]
    if not tests:
        pytest.skip("no examples")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    for test in tests:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", percept.RandomWeightsWarning)
            runner.run(test, out=failures.append)
    failed = runner.summarize(verbose=False)
    assert failed.failed == 0, "".join(failures)
