"""RayBackend on a real local Ray: sharing groups, and synchronous == LocalBackend (both transports)."""

import pytest

ray = pytest.importorskip("ray")

from sharedsg.harness.backend import LocalBackend  # noqa: E402
from sharedsg.harness.runlog import RunLog, run_path  # noqa: E402
from sharedsg.harness.launcher import Launcher  # noqa: E402
from sharedsg.experiments.train import run_training  # noqa: E402
from sharedsg.commands.cluster import format_status  # noqa: E402
from sharedsg.runtime.hosting.backend import RayBackend, server_scalars  # noqa: E402
from sharedsg.runtime.service.registry import registry_actor  # noqa: E402
from sharedsg.bench.raytools import tiny_config  # noqa: E402


pytestmark = pytest.mark.usefixtures("ray_session")  # the test run's one Ray (tests/conftest.py)


def ray_backend(cfg):
    log = RunLog(run_path(cfg))
    server = registry_actor(cfg, str(log.path), detached=False)
    return RayBackend(cfg, log, server), log


def steps(backend, cfg, iterations):
    """Per-stream train losses and SG versions seen, stepping every stream every iteration."""
    backend.add_streams(cfg.streams)
    losses = {n: [] for n in cfg.streams}
    versions = {n: [] for n in cfg.streams}
    for it in range(iterations):
        for name, m in backend.train(list(cfg.streams), it).items():
            losses[name].append(m["loss/train"])
            versions[name].append(m["sg/version"])
    return losses, versions


@pytest.mark.parametrize("sharing", ["shared", "separate"])
def test_sharing_groups(tmp_path, sharing):
    """sharing=separate: one group actor per stream; shared: one for both. status lists them, and the
    server's scalars land in TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(tmp_path, f"sg.sharing={sharing}", f"experiment.name=share-{sharing}")
    backend, log = ray_backend(cfg)
    try:
        losses, _ = steps(backend, cfg, 5)
        backend.flush()
        state = backend.server_state()
        groups = {n: backend.info(n)["group"] for n in cfg.streams}
        text = format_status({cfg.experiment.name: state})
    finally:
        backend.close()
        log.close()
    assert all(len(v) == 5 for v in losses.values())
    if sharing == "shared":
        assert set(groups.values()) == {"shared"}
        assert set(state["groups"]) == {"shared"}
        # one lineage: both streams' pushes train one group (pushes that queue together share an update)
        assert state["groups"]["shared"]["version"] == state["updates"]
        assert state["updates"] + state["coalesced"] == 10
        assert {n: s["pushes"] for n, s in state["streams"].items()} == {"cyclist": 5, "pedestrian": 5}
        assert state["groups"]["shared"]["streams"] == ["cyclist", "pedestrian"]
    else:
        assert groups == {"cyclist": "cyclist", "pedestrian": "pedestrian"}
        assert {g: i["streams"] for g, i in state["groups"].items()} == {"cyclist": ["cyclist"],
                                                                         "pedestrian": ["pedestrian"]}
        assert sum(i["version"] for i in state["groups"].values()) == state["updates"]  # one update, one group
        (a, pid_a), (b, pid_b) = ((state["groups"][g]["actor"], state["groups"][g]["pid"])
                                  for g in ("cyclist", "pedestrian"))
        assert a == "sggroup:share-separate:cyclist" and b == "sggroup:share-separate:pedestrian" and pid_a != pid_b
    assert state["pushes"] == 10 and state["duplicates"] == 0 and state["lost_pushes"] == 0
    for g, info in state["groups"].items():
        assert f"group {g}: v{info['version']}  actor={info['actor']}" in text
    tags = set(EventAccumulator(str(log.path / "server")).Reload().Tags()["scalars"])
    assert {"server/pushes", "server/ingest_per_s", "server/updates_per_s", "server/buffer_fill",
            "server/overflow", "server/version_lag_mean"} <= tags, sorted(tags)


@pytest.mark.parametrize("transport", ["replica", "rpc"])
@pytest.mark.parametrize("sharing", ["separate", "shared"])
def test_synchronous_matches_local(tmp_path, transport, sharing):
    """--local runs the exchange of a Ray run minus the transport (one Stream.train): with
    experiment.synchronous the same seed gives the same losses, SG versions and lags."""
    overrides = (f"sg.transport={transport}", "experiment.synchronous=true", f"sg.sharing={sharing}",
                 f"experiment.name={transport}-{sharing}")
    local_cfg = tiny_config(tmp_path / "local", *overrides)
    local = LocalBackend(local_cfg)
    want, want_versions = steps(local, local_cfg, 6)
    local_eval = {n: local.evaluate(n)["loss/eval"] for n in local_cfg.streams}
    cfg = tiny_config(tmp_path / "ray", *overrides)
    backend, log = ray_backend(cfg)
    try:
        got, got_versions = steps(backend, cfg, 6)
        ray_eval = {n: backend.evaluate(n)["loss/eval"] for n in cfg.streams}
    finally:
        backend.close()
        log.close()
    for name in cfg.streams:
        assert got[name] == pytest.approx(want[name], abs=1e-5), name
        assert got_versions[name] == want_versions[name], name
        assert ray_eval[name] == pytest.approx(local_eval[name], abs=1e-5)


def test_run_training_on_ray_logs_everything(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(tmp_path, "experiment.iterations=4", "experiment.eval_every=2", "experiment.name=tb")
    backend, log = ray_backend(cfg)
    try:
        results = run_training(cfg, Launcher(backend=lambda c, lg: backend, map=None), log)
    finally:
        log.close()
        backend.close()
    assert set(results["sg_versions"]) == {"shared"}
    # 8 pushes; how many updates they make depends on the group's pace (buffered policy: under load
    # it coalesces up to sg.coalesce_max = 8 pushes into one update), so at least one and at most 8
    assert 1 <= results["sg_versions"]["shared"] <= 8
    acc = EventAccumulator(str(log.path / "cyclist")).Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("loss/train", "loss/eval", "ade/train", "grad_norm/ic/true", "grad_norm/wc/synthetic",
                "sg/oc/mse", "sg/oc/cosine", "memory/attention_entropy", "perf/steps_per_s", "sg/version_lag"):
        assert tag in tags, (tag, sorted(tags))
    server = EventAccumulator(str(log.path / "server")).Reload()
    assert {"server/pushes", "server/updates", "server/coalesced"} <= set(server.Tags()["scalars"])
    assert (log.path / "results.json").is_file()


def test_server_scalars_skip_a_group_that_did_not_answer():
    """A group restarting (or too busy to answer within the registry's timeout) is reported as
    {"error": ...}: the scalars count it and log the versions of the others, and do not fail."""
    state = {"pushes": 30, "updates": 12, "coalesced": 2, "queue": 0, "lost_pushes": 1, "restarts": 1,
             "checkpoints": 3, "scalars": {"server/buffer_fill": 0.5},
             "groups": {"shared": {"error": "TimeoutError", "streams": ["cyclist"]},
                        "other": {"version": 7, "streams": ["pedestrian"]}}}
    values = server_scalars(state, (10.0, 10), 12.0)
    assert values["sg/version/other"] == 7 and "sg/version/shared" not in values
    assert values["server/groups_unreachable"] == 1 and values["server/pushes_per_s"] == 10.0
    assert values["server/buffer_fill"] == 0.5


def test_a_reset_runs_a_seed_on_the_same_actors_as_new_actors_run_it(tmp_path):
    """RayBackend.reset (the knowledge-sharing seeds, Ray Tune's reuse_actors): seed 1 on the stream and
    SG group actors that ran seed 0 gives what seed 1 on new actors gives (synchronous: every step's
    loss and SG version, the held-out losses, the group's version), in the same processes; a reused
    actor that crashes comes back in the run it serves now."""
    from sharedsg.bench.raytools import kill_and_wait, settled_state

    def config(seed, name):
        return tiny_config(tmp_path, "experiment.synchronous=true", f"experiment.seed={seed}",
                           f"experiment.name={name}", f"experiment.run_name=seed{seed}")

    def run(backend, cfg, iterations):
        losses, versions = steps(backend, cfg, iterations)
        held_out = {n: backend.evaluate(n)["loss/eval"] for n in cfg.streams}
        return losses, versions, held_out, backend.sg_versions()

    def processes(backend, cfg):
        groups = backend.server_state()["groups"]
        return {n: backend.info(n)["pid"] for n in cfg.streams}, {g: groups[g]["pid"] for g in groups}

    cfg0, cfg1 = config(0, "reuse"), config(1, "reuse")
    backend, log0 = ray_backend(cfg0)
    log1 = RunLog(run_path(cfg1))
    try:
        run(backend, cfg0, 3)  # seed 0: 3 iterations, so that its group's version differs from seed 1's
        before = processes(backend, cfg0)
        backend.reset(cfg1, log1)
        reused = run(backend, cfg1, 5)
        after = processes(backend, cfg1)
        # the group restarted by Ray (with the arguments of seed 0) restores seed 1's checkpoint
        ray.get(backend.server.checkpoint.remote())
        kill_and_wait(ray.get(backend.server.group.remote("shared")))
        restarted = settled_state(backend.server_state)["groups"]["shared"]
    finally:
        backend.close()
        log0.close()
        log1.close()
    cfg = config(1, "fresh")
    backend, log = ray_backend(cfg)
    try:
        fresh = run(backend, cfg, 5)
    finally:
        backend.close()
        log.close()
    assert after == before and len(set(after[0].values()) | set(after[1].values())) == 3
    (got_losses, got_versions, got_eval, got_sg), (want_losses, want_versions, want_eval, want_sg) = reused, fresh
    assert got_sg == want_sg == {"shared": 10}
    for name in cfg.streams:
        assert got_losses[name] == pytest.approx(want_losses[name], abs=1e-6), name
        assert got_versions[name] == want_versions[name], name
        assert got_eval[name] == pytest.approx(want_eval[name], abs=1e-6), name
    assert restarted["restarts"] == 1 and restarted["version"] == 10 + int(cfg.sg.checkpoint_every_pushes) + 1
    assert (log1.path / "checkpoints" / "sg-shared.pt").is_file() and (log0.path / "checkpoints" / "server.json").is_file()


def test_an_actor_started_for_a_run_finds_where_resets_moved_it():
    """Ray restarts a crashed actor with the arguments it was created with: current_args follows the
    resets' notes from them to the run it serves now, until the run's end forgets them."""
    from sharedsg.runtime import current_args, forget_resets, record_reset

    record_reset("/runs/r/seed0", {"seed": 1}, "/runs/r/seed1")
    record_reset("/runs/r/seed1", {"seed": 2}, "/runs/r/seed2")
    try:
        assert current_args({"seed": 0}, "/runs/r/seed0") == ({"seed": 2}, "/runs/r/seed2")
        assert current_args({"seed": 1}, "/runs/r/seed1") == ({"seed": 2}, "/runs/r/seed2")
        assert current_args({"seed": 5}, "/runs/other") == ({"seed": 5}, "/runs/other")
    finally:
        forget_resets(["/runs/r/seed0", "/runs/r/seed1"])
    assert current_args({"seed": 0}, "/runs/r/seed0") == ({"seed": 0}, "/runs/r/seed0")
