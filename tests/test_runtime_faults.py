"""Faults on a real local Ray: an SG group actor, the registry or a stream actor killed mid-run."""

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from sharedsg.harness.runlog import RunLog, run_path  # noqa: E402
from sharedsg.runtime import NAMESPACE, group_actor_name  # noqa: E402
from sharedsg.runtime.service import checkpoint  # noqa: E402
from sharedsg.runtime.hosting.backend import RayBackend  # noqa: E402
from sharedsg.runtime.service.registry import registry_actor  # noqa: E402
from sharedsg.bench.raytools import kill_and_wait, settled_state, tiny_config  # noqa: E402


pytestmark = pytest.mark.usefixtures("ray_session")  # the test run's one Ray (tests/conftest.py)


def start(cfg):
    log = RunLog(run_path(cfg))
    backend = RayBackend(cfg, log, registry_actor(cfg, str(log.path), detached=False))
    backend.add_streams(cfg.streams)
    return backend, log


def test_server_killed_mid_run(tmp_path):
    k = 5
    cfg = tiny_config(tmp_path, f"sg.checkpoint_every_pushes={k}", "sg.checkpoint_every_s=0",
                      "experiment.name=fault-server")
    backend, log = start(cfg)
    seen = {n: [] for n in cfg.streams}
    try:
        for it in range(16):
            if it == 8:  # 16 pushes acknowledged, the last checkpoint has 15
                backend.flush()
                group = ray.get_actor(group_actor_name(cfg.experiment.name, "shared"), namespace=NAMESPACE)
                ray.get(group.drain.remote())
                kill_and_wait(group)  # Ray restarts it (max_restarts=-1)
            for name, m in backend.train(list(cfg.streams), it).items():
                seen[name].append(m["sg/version"])
        backend.flush()
        state = settled_state(backend.server_state)
        steps = {n: backend.info(n)["steps"] for n in cfg.streams}
    finally:
        backend.close()
        log.close()
    print(f"\nserver killed once: lost pushes {state['lost_pushes']} "
          f"(checkpoint every {k} pushes), versions seen {seen}")
    assert state["restarts"] == 1
    assert steps == {"cyclist": 16, "pedestrian": 16}
    for name, versions in seen.items():
        assert versions == sorted(versions), f"{name}: version went backwards: {versions}"
    assert 1 <= state["lost_pushes"] <= k
    # every push is accounted for: applied before or after the crash, or counted as lost
    restored = checkpoint.load(checkpoint.group_checkpoint(log.path, "shared"))
    assert restored is not None and restored["counts"]["restarts"] == 1
    assert state["pushes"] + state["lost_pushes"] == 32
    assert state["groups"]["shared"]["version"] >= state["updates"]


def test_stream_killed_resumes_from_its_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, "resources.stream_checkpoint_every=3", "experiment.name=fault-stream")
    backend, log = start(cfg)
    try:
        for it in range(12):
            if it == 7:  # cyclist has done 7 steps, its last checkpoint is at step 6
                kill_and_wait(backend.actors["cyclist"])
            backend.train(list(cfg.streams), it)
        backend.flush()
        killed, other = backend.info("cyclist"), backend.info("pedestrian")
        state = settled_state(backend.server_state)
    finally:
        backend.close()
        log.close()
    assert other["steps"] == 12 and not other["reconstructed"]
    assert killed["reconstructed"] and killed["restored_step"] == 6
    assert killed["steps"] == 6 + (12 - 7)
    assert state["streams"]["cyclist"]["registrations"] == 2
    assert state["streams"]["cyclist"]["duplicates"] == 1  # re-done step 7 is not counted twice
    assert checkpoint.load(checkpoint.stream_checkpoint(log.path, "cyclist"))["learner"]["steps"] == 9


def test_stream_killed_without_checkpoint_continues_after_the_servers_watermark(tmp_path):
    """Exactly once after any restart: a stream whose checkpoint is gone restarts from scratch and
    numbers its pushes after the group's high mark: none dropped as a duplicate, none doubled."""
    cfg = tiny_config(tmp_path, "resources.stream_checkpoint_every=3", "experiment.name=fault-fresh")
    backend, log = start(cfg)
    try:
        for it in range(12):
            if it == 7:
                backend.flush()
                Path(checkpoint.stream_checkpoint(log.path, "cyclist")).unlink()
                kill_and_wait(backend.actors["cyclist"])
            backend.train(list(cfg.streams), it)
        backend.flush()
        killed = backend.info("cyclist")
        state = settled_state(backend.server_state)
    finally:
        backend.close()
        log.close()
    assert killed["reconstructed"] and killed["restored_step"] is None and killed["resumed_from_server"]
    assert killed["steps"] == 12 - 7 and killed["seq"] == 12 and killed["acked"] == 12
    entry = state["streams"]["cyclist"]
    assert entry["registrations"] == 2 and entry["resumed_from_server"] == 1
    assert entry["pushes"] == 12 and entry["duplicates"] == 0 and entry["lost"] == 0  # none dropped, none doubled
    assert entry["last_seq"] == 12 and entry["ahead"] == []
    assert state["pushes"] == 24 and state["duplicates"] == 0


@pytest.mark.parametrize("max_staleness", [1, pytest.param(100, marks=pytest.mark.slow)])  # 100: in make test-all
def test_registry_killed_mid_run_streams_carry_on(tmp_path, max_staleness):
    """The registry holds no SG state: when Ray restarts it, it starts its groups again from their
    checkpoints and the streams register again with the new group actor (sg.max_staleness=100: the
    streams find the group gone by a push, not by a pull, and that push fails)."""
    cfg = tiny_config(tmp_path, "sg.checkpoint_every_pushes=4", "sg.checkpoint_every_s=0",
                      f"sg.max_staleness={max_staleness}", f"experiment.name=fault-registry-{max_staleness}")
    backend, log = start(cfg)
    seen = {n: [] for n in cfg.streams}
    try:
        for it in range(10):
            if it == 5:
                backend.flush()
                kill_and_wait(backend.server)
            for name, m in backend.train(list(cfg.streams), it).items():
                seen[name].append(m["sg/version"])
        backend.flush()
        state = settled_state(backend.server_state)
        infos = {n: backend.info(n) for n in cfg.streams}
    finally:
        backend.close()
        log.close()
    assert state["registry_restarts"] == 1 and state["restarts"] == 1
    assert all(i["steps"] == 10 and i["reconnects"] >= 1 for i in infos.values()), infos
    for name, versions in seen.items():
        assert versions == sorted(versions), f"{name}: version went backwards: {versions}"
    # exactly once: each of the 20 pushes made is counted once, applied or lost (a push that failed
    # on the dead group is never resent, so the new group counts it as lost)
    assert state["pushes"] + state["lost_pushes"] == 20
    errors = sum(i["push_errors"] for i in infos.values())
    print(f"\nregistry killed once (sg.max_staleness={max_staleness}): pushes {state['pushes']}, "
          f"lost {state['lost_pushes']}, push errors {errors}")
    assert errors <= state["lost_pushes"]
    if max_staleness == 100:
        assert errors >= 1
