"""Shared fixtures: small configs built through the real config system; and the ``needs_data``
marker (tests/data_marker.py): a test reads a dataset only with ``@pytest.mark.needs_data("omniglot")``
(or ``"mnist"``, ``"sdd"``), skipped without it; a test without the marker sees an empty data root.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Iterator, Optional

import pytest
import torch

from sharedsg.config import load_config

pytest_plugins = ["data_marker"]

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
