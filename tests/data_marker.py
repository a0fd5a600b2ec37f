"""The ``needs_data`` marker (a pytest plugin that ``tests/conftest.py`` loads).

``@pytest.mark.needs_data("omniglot")`` (or ``"mnist"``, ``"sdd"``) marks a test that reads a
dataset from the data root (:func:`sharedsg.config.data_root`). Without the dataset the test is
skipped, and pytest's ``-ra`` summary (the project's default) folds these skips into one line
per missing dataset saying how to enable it. When ``SHAREDSG_DATA`` is set (as CI and
``make test`` set it where the data exists) a missing dataset is an error instead: a run that
was given the data never skips a data test.

A test only sees data when it says so. During collection and during every test without the
marker, ``SHAREDSG_DATA`` (the first place :func:`~sharedsg.config.data_root` looks after
``data.root``, and what subprocesses inherit) names an empty folder; a marked test gets the real
data root. So a test that reads a dataset without its marker fails wherever it runs, CI
included, instead of only on a machine without the data. In each test module the unmarked tests
run first, so that a fixture wider than one test (``scope="module"``) that both use is built
under the empty root: an unmarked test cannot borrow data that a marked test loaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List

import pytest

from sharedsg.config import data_root
from sharedsg.data.errors import DataError, how_to_enable
from sharedsg.data.mnist import FILES, find_idx
from sharedsg.data.omniglot import detect_layout
from sharedsg.data.sdd import annotation_files

ENV = "SHAREDSG_DATA"


def _has_omniglot(root: Path) -> None:
    detect_layout(root / "omniglot")


def _has_mnist(root: Path) -> None:
    for pair in FILES.values():
        for name in pair:
            find_idx(root / "mnist", name)


def _has_sdd(root: Path) -> None:
    annotation_files(root / "sdd")
    if not (root / "sdd" / "estimated_scales.yaml").is_file():
        raise DataError(f"{root / 'sdd'}: no estimated_scales.yaml")


CHECKS = {"omniglot": _has_omniglot, "mnist": _has_mnist, "sdd": _has_sdd}
_MISSING = pytest.StashKey[list]()
_SKIP_REASON = pytest.StashKey[str]()
_REAL_ENV = pytest.StashKey[object]()  # SHAREDSG_DATA as the run was started (None: unset)
_REAL_ROOT = pytest.StashKey[Path]()
_EMPTY_ROOT = pytest.StashKey[Path]()


def missing_datasets(root: Path) -> Dict[str, str]:
    """{dataset: why it is not usable} for the datasets absent from ``root``."""
    missing = {}
    for name, check in CHECKS.items():
        try:
            check(root)
        except DataError as exc:
            missing[name] = str(exc)
    return missing


def datasets_of(item: pytest.Item) -> List[str]:
    """The datasets ``item`` declares with ``needs_data``."""
    return [name for m in item.iter_markers("needs_data") for name in m.args]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_data(*datasets): the test reads these datasets (omniglot, mnist, sdd) "
                                       "from the data root; skipped without them unless SHAREDSG_DATA is set; "
                                       "a test without the marker sees an empty data root")
    config.stash[_REAL_ENV] = os.environ.get(ENV)
    config.stash[_REAL_ROOT] = data_root()
    config.stash[_EMPTY_ROOT] = Path(tempfile.mkdtemp(prefix="sharedsg-no-data-"))
    os.environ[ENV] = str(config.stash[_EMPTY_ROOT])  # collection (module-level code) sees no data


def pytest_unconfigure(config: pytest.Config) -> None:
    if _EMPTY_ROOT not in config.stash:
        return
    real = config.stash[_REAL_ENV]
    if real is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = str(real)
    shutil.rmtree(config.stash[_EMPTY_ROOT], ignore_errors=True)


def unmarked_first(items: list) -> list:
    """``items`` with, in each test module, the unmarked tests before the marked ones (each group in
    its order), so that a module fixture both use is built for an unmarked test, under the empty
    data root."""
    modules: Dict[str, List[int]] = {}
    for i, item in enumerate(items):
        modules.setdefault(item.nodeid.split("::")[0], []).append(i)
    result = list(items)
    for indices in modules.values():
        ordered = [i for i in indices if not datasets_of(items[i])] + [i for i in indices if datasets_of(items[i])]
        for slot, source in zip(indices, ordered):
            result[slot] = items[source]
    return result


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    marked = [(item, name) for item in items for name in datasets_of(item)]
    unknown = sorted({name for _, name in marked} - set(CHECKS))
    if unknown:
        raise pytest.UsageError(f"needs_data: unknown dataset(s) {', '.join(unknown)}; use {', '.join(CHECKS)}")
    items[:] = unmarked_first(items)
    if not marked:
        return
    missing = missing_datasets(config.stash[_REAL_ROOT])
    strict = bool(config.stash[_REAL_ENV])
    for item, name in marked:
        if name not in missing:
            continue
        if strict:
            item.stash.setdefault(_MISSING, []).append(f"SHAREDSG_DATA is set but {missing[name]}")
        elif _SKIP_REASON not in item.stash:
            item.stash[_SKIP_REASON] = f"no {name} data: {how_to_enable(name)}"
            item.add_marker(pytest.mark.skip(reason=item.stash[_SKIP_REASON]))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """The real data root for a marked test (its setup, call and teardown), an empty one otherwise."""
    config = item.config
    os.environ[ENV] = str(config.stash[_REAL_ROOT] if datasets_of(item) else config.stash[_EMPTY_ROOT])
    try:
        return (yield)
    finally:
        os.environ[ENV] = str(config.stash[_EMPTY_ROOT])


def pytest_runtest_setup(item: pytest.Item) -> None:
    problems = item.stash.get(_MISSING, None)
    if problems:
        pytest.fail(problems[0], pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A skip for missing data is reported at this folder, not at the test, so that the ``-ra``
    summary folds all skips of one dataset into one line: ``SKIPPED [8] tests: no omniglot data: ...``."""
    report = yield
    reason = item.stash.get(_SKIP_REASON, None)
    if reason is not None and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (str(Path(__file__).parent), None, reason)
    return report
