"""Shared fixtures: small configs built through the real config system, and the ``needs_data`` marker.

``@pytest.mark.needs_data("omniglot")`` (or ``"mnist"``, ``"sdd"``) marks a test that reads a
dataset from the data root (:func:`sharedsg.config.data_root`). Without the dataset the test is
skipped, and pytest's ``-ra`` summary (the project's default) folds these skips into one line
per missing dataset saying how to enable it. When
``SHAREDSG_DATA`` is set (as CI and ``make test`` set it where the data exists) a missing
dataset is an error instead: a run that was given the data never skips a data test.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Iterator, Optional

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


# -- Ray -----------------------------------------------------------------------------------------
# Every Ray that the tests start on this machine (the shared one below, a module's own cluster, the
# CLI in a subprocess) runs without token authentication unless the test sets RAY_AUTH_MODE=token
# itself (the tests of the clusters' token authentication do). Left unset, the first ray.init of the
# run would switch this process's environment to token mode (Ray's default for a new local Ray), so
# that what a later test's subprocess runs would depend on which tests ran before it.
os.environ["RAY_AUTH_MODE"] = "disabled"

RAY_CPUS = 4
RAY_OBJECT_STORE_MB = 150


class SharedRay:
    """The one Ray in this process that the in-process Ray tests of a test run share.

    Started on first use and shut down at the end of the run. Its GPUs are fixed when it starts:
    ``use(gpus=1)`` (a GPU that need not exist, for the tests of the jobs' device) starts it again
    with one, and the next ``use()`` starts it again without; modules that ask for the same share
    one Ray. ``stop()`` makes way for a module that starts its own (a multi-node cluster)."""

    def __init__(self) -> None:
        self.gpus: Optional[int] = None

    def use(self, gpus: int = 0) -> None:
        import ray

        from sharedsg.runtime import NAMESPACE

        if ray.is_initialized() and self.gpus == gpus:
            return
        self.stop()
        ray.init(address="local", num_cpus=RAY_CPUS, num_gpus=gpus, include_dashboard=False,
                 object_store_memory=RAY_OBJECT_STORE_MB * 1024 * 1024, namespace=NAMESPACE,
                 logging_level=logging.WARNING)
        self.gpus = gpus

    def stop(self) -> None:
        import ray

        ray.shutdown()
        self.gpus = None


@pytest.fixture(scope="session")
def shared_ray() -> Iterator[SharedRay]:
    """The test run's one in-process Ray (:class:`SharedRay`), shut down at the end of the run."""
    shared = SharedRay()
    yield shared
    shared.stop()


@pytest.fixture(scope="module")
def ray_session(shared_ray: SharedRay) -> Iterator[None]:
    """This module's tests run on the test run's shared Ray: CPUs only (``num_gpus=0``)."""
    shared_ray.use(gpus=0)
    yield
    _no_named_actor_outlives_the_module()


@pytest.fixture(scope="module")
def ray_session_one_gpu(shared_ray: SharedRay) -> Iterator[None]:
    """This module's tests run on the shared Ray declaring one GPU (which need not exist)."""
    shared_ray.use(gpus=1)
    yield
    _no_named_actor_outlives_the_module()


@pytest.fixture(scope="module")
def own_ray(shared_ray: SharedRay) -> None:
    """This module starts a Ray of its own (a ``ray.cluster_utils.Cluster``): the shared one is
    stopped first, so that ``ray.init`` and ``sharedsg`` calls in this process reach the module's."""
    shared_ray.stop()


def _no_named_actor_outlives_the_module(timeout_s: float = 30.0) -> None:
    """A module's named actors (registry, SG groups, streams, jobs) end with it, as they did when
    each module had a Ray of its own, so that the next module starts from a clean Ray: otherwise
    this fails, naming them (and kills them)."""
    import ray

    if not ray.is_initialized():
        return
    deadline = time.monotonic() + timeout_s
    while (left := ray.util.list_named_actors(all_namespaces=True)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for entry in left:
        try:
            ray.kill(ray.get_actor(entry["name"], namespace=entry["namespace"]), no_restart=True)
        except ValueError:  # gone meanwhile
            pass
    assert not left, f"named actors outlived their test module: {left}"
