"""Shared fixtures: small configs built through the real config system, and the ``needs_data`` marker.

``@pytest.mark.needs_data("omniglot")`` (or ``"mnist"``, ``"sdd"``) marks a test that reads a
dataset from the data root (:func:`sharedsg.config.data_root`). Without the dataset the test is
skipped, and pytest's ``-ra`` summary (the project's default) folds these skips into one line
per missing dataset saying how to enable it. When
``SHAREDSG_DATA`` is set (as CI and ``make test`` set it where the data exists) a missing
dataset is an error instead: a run that was given the data never skips a data test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from sharedsg.config import data_root, load_config
from sharedsg.data.errors import DataError, how_to_enable
from sharedsg.data.mnist import FILES, find_idx
from sharedsg.data.omniglot import detect_layout
from sharedsg.data.sdd import annotation_files

SMALL = [
    "model.slot_width=8", "model.slots=4", "model.encoder_hidden=8",
    "sg.hidden=16", "learner.batch_size=4", "data.obs_len=6", "data.pred_len=6",
]


@pytest.fixture
def small_cfg():
    """A tiny trajectory NMN config; extra overrides via small_cfg(*more)."""
    def make(*more: str):
        return load_config(None, SMALL + list(more))
    return make


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield


# -- datasets ------------------------------------------------------------------------------------

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


def missing_datasets(root: Path) -> dict:
    """{dataset: why it is not usable} for the datasets absent from ``root``."""
    missing = {}
    for name, check in CHECKS.items():
        try:
            check(root)
        except DataError as exc:
            missing[name] = str(exc)
    return missing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_data(*datasets): the test reads these datasets (omniglot, mnist, sdd) "
                                       "from the data root; skipped without them unless SHAREDSG_DATA is set")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    marked = [(item, name) for item in items for m in item.iter_markers("needs_data") for name in m.args]
    unknown = sorted({name for _, name in marked} - set(CHECKS))
    if unknown:
        raise pytest.UsageError(f"needs_data: unknown dataset(s) {', '.join(unknown)}; use {', '.join(CHECKS)}")
    if not marked:
        return
    missing = missing_datasets(data_root())
    strict = bool(os.environ.get("SHAREDSG_DATA"))
    for item, name in marked:
        if name not in missing:
            continue
        if strict:
            item.stash.setdefault(_MISSING, []).append(f"SHAREDSG_DATA is set but {missing[name]}")
        elif _SKIP_REASON not in item.stash:
            item.stash[_SKIP_REASON] = f"no {name} data: {how_to_enable(name)}"
            item.add_marker(pytest.mark.skip(reason=item.stash[_SKIP_REASON]))


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
