"""The SG service on a real local Ray: the registry, group actors, ingest apart from learning,
the exact and buffered policies, weights put once per version, checkpoints, status."""

import pytest
import torch

ray = pytest.importorskip("ray")

from omegaconf import OmegaConf  # noqa: E402

from sharedsg.data.batch import Batch  # noqa: E402
from sharedsg.learn.stream import StreamLearner  # noqa: E402
from sharedsg.runtime.service import checkpoint  # noqa: E402
from sharedsg.runtime.service.registry import registry_actor  # noqa: E402
from sharedsg.runtime.service.server import percentile  # noqa: E402
from sharedsg.bench.raytools import tiny_config  # noqa: E402


pytestmark = pytest.mark.usefixtures("ray_session")  # the test run's one Ray (tests/conftest.py)


def service(tmp_path, *overrides):
    cfg = tiny_config(tmp_path, *overrides)
    registry = registry_actor(cfg, str(tmp_path / "run"), detached=False)
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    targets = learner.step(Batch(torch.randn(8, 8, 2), torch.randn(8, 8, 2))).targets
    return cfg, registry, learner, targets, OmegaConf.to_container(cfg.model, resolve=True)


def meta(acked=0):
    return {"acked": acked, "in_flight": 0}


def test_percentile_is_the_nearest_rank():
    assert percentile([], 0.5) is None
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert (percentile(values, 0.0), percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) \
        == (1.0, 51.0, 99.0, 100.0)


def test_server_protocol(tmp_path):
    cfg, registry, learner, targets, model = service(tmp_path, "experiment.name=server-unit", "sg.policy=exact",
                                                     "sg.checkpoint_every_pushes=2")
    try:
        reg = ray.get(registry.register.remote("cyclist", "shared", learner.dims, model))
        assert reg["group"] == "shared" and reg["version"] == 0 and reg["high"] == 0
        group = reg["actor"]
        bad = ray.get(registry.register.remote("wide", "shared", dict(learner.dims, ic=16), model))
        assert "ic=16 (group has 8)" in bad["error"]

        first = ray.get(group.push.remote("cyclist", 1, meta(), *targets.parts()))
        again = ray.get(group.push.remote("cyclist", 1, meta(), *targets.parts()))  # a retried push
        assert first["applied"] and not again["applied"]
        assert ray.get(group.drain.remote()) == 1  # acknowledged at once, trained on by the learner
        assert ray.get(group.pull.remote(1)) is None
        reply = ray.get(group.pull.remote(0))
        assert reply["version"] == 1 and isinstance(reply["ref"], ray.ObjectRef)
        assert ray.get(group.pull.remote(0))["ref"] == reply["ref"]  # put once per version
        state = ray.get(reply["ref"])
        assert state.version == 1
        learner.load_sg(state)
        pred = ray.get(group.predict.remote(targets.h, targets.y))
        local = learner.local_predict(targets.h, targets.y)
        for c in pred:
            assert torch.allclose(pred[c], local[c], atol=1e-6)
        ray.get(group.push.remote("cyclist", 2, meta(1), *targets.parts()))
        assert ray.get(group.drain.remote()) == 2
        s = ray.get(registry.state.remote())
        assert s["pushes"] == 2 and s["duplicates"] == 1 and set(s["streams"]) == {"cyclist"}
        assert s["publishes"] == 1 and s["pulls"] == 2
        assert s["groups"]["shared"]["actor"] == "sggroup:server-unit:shared"
        assert s["groups"]["shared"]["streams"] == ["cyclist"] and s["groups"]["shared"]["version"] == 2
        saved = checkpoint.load(checkpoint.group_checkpoint(tmp_path / "run", "shared"))  # weights_only=True
        assert saved["consumed"]["cyclist"]["watermark"] == 2 and saved["sg"]["version"] == 2
        assert checkpoint.load_json(checkpoint.server_checkpoint(tmp_path / "run"))["groups"] == {"shared": model}
        # the registry's process never loads torch: it starts group actors and passes plain dicts
        assert "libtorch" not in open(f"/proc/{s['pid']}/maps").read()
    finally:
        ray.kill(registry, no_restart=True)


def test_exact_trains_every_push_once_in_order_and_counts_lost(tmp_path):
    """Pushes that queue while an update runs go into one update (up to sg.coalesce_max); sequence
    numbers are tracked exactly, so pushes arriving out of order are neither lost nor taken twice;
    the serving path answers while an update runs."""
    cfg, registry, learner, targets, model = service(
        tmp_path, "experiment.name=server-exact", "sg.policy=exact", "sg.updates_per_push=30",
        "sg.coalesce_max=4", "sg.checkpoint_every_pushes=100")
    parts = [ray.put(p) for p in targets.parts()]
    try:
        group = None
        for name in ("a", "b"):
            group = ray.get(registry.register.remote(name, "shared", learner.dims, model))["actor"]
        replies = ray.get([group.push.remote("a", s, meta(), *parts) for s in (3, 1, 2)])
        assert all(r["applied"] for r in replies)
        assert not ray.get(group.push.remote("a", 3, meta(), *parts))["applied"]
        pairs = [(s, n) for s in range(4, 9) for n in "ab"][:9]  # nine pushes at once, from two streams
        refs = [group.push.remote(n, s, meta(), *parts) for s, n in pairs]
        assert all(r["applied"] for r in ray.get(refs))
        busy = ray.get(group.state.remote())  # answered while the learner works through the queue
        assert busy["learning"] > 0 or busy["queued"] > 0
        ray.get(group.drain.remote())
        s = ray.get(registry.state.remote())
        assert s["pushes"] == 12 and s["trained"] == 12 and s["duplicates"] == 1 and s["overflow"] == 0
        assert s["updates"] < 12 and s["updates"] + s["coalesced"] == 12
        assert s["groups"]["shared"]["version"] == s["updates"]
        assert s["streams"]["a"]["last_seq"] == 8 and s["streams"]["a"]["ahead"] == []
        # stream b says all its pushes up to 9 were acknowledged; this group has 4-7 of them
        # (as after a crash that lost the rest): 1-3, 8 and 9 are counted lost
        assert s["streams"]["b"]["last_seq"] == 0 and s["streams"]["b"]["ahead"] == [4, 5, 6, 7]
        assert ray.get(group.push.remote("b", 10, meta(9), *parts))["applied"]
        s = ray.get(registry.state.remote())
        assert s["lost_pushes"] == 5 and s["streams"]["b"]["last_seq"] == 10 and s["streams"]["b"]["ahead"] == []
    finally:
        ray.kill(registry, no_restart=True)


def test_a_push_that_overtook_an_earlier_one_waits_for_it(tmp_path):
    """An async actor may start a stream's calls in any order: a push names the earlier ones still in
    flight (``before``) and is queued only after them, or after sg.reorder_wait_s when one never comes."""
    cfg, registry, learner, targets, model = service(tmp_path, "experiment.name=server-order", "sg.policy=exact",
                                                     "sg.reorder_wait_s=1.5")
    parts = [ray.put(p) for p in targets.parts()]
    try:
        group = ray.get(registry.register.remote("a", "shared", learner.dims, model))["actor"]
        second = group.push.remote("a", 2, dict(meta(), before=[1]), *parts)
        assert ray.wait([second], timeout=0.5)[0] == []  # held back for push 1
        assert ray.get(group.push.remote("a", 1, meta(), *parts))["applied"]
        assert ray.get(second, timeout=1.0)["applied"]
        ray.get(group.drain.remote())
        lonely = group.push.remote("a", 4, dict(meta(), before=[3]), *parts)  # push 3 was lost: no wait forever
        assert ray.wait([lonely], timeout=0.5)[0] == [] and ray.get(lonely, timeout=5)["applied"]
        s = ray.get(group.state.remote())
        assert (s["overtaking"], s["pushes"], s["streams"]["a"]["last_seq"], s["streams"]["a"]["ahead"]) == (2, 3, 2, [4])
    finally:
        ray.kill(registry, no_restart=True)


def test_buffered_evicts_the_oldest_and_counts_them(tmp_path):
    cfg, registry, learner, targets, model = service(
        tmp_path, "experiment.name=server-buffered", "sg.policy=buffered", "sg.buffer_size=3",
        "sg.updates_per_push=30", "sg.coalesce_max=2")
    parts = [ray.put(p) for p in targets.parts()]
    try:
        group = ray.get(registry.register.remote("a", "shared", learner.dims, model))["actor"]
        replies = ray.get([group.push.remote("a", s, meta(), *parts) for s in range(1, 21)])
        assert all(r["applied"] for r in replies)  # never waits, never refuses
        ray.get(group.drain.remote())
        s = ray.get(registry.state.remote())
        assert s["policy"] == "buffered" and s["pushes"] == 20
        assert s["overflow"] > 0 and s["trained"] + s["overflow"] == 20  # every push trained on or counted
        assert s["lost_pushes"] == 0 and s["groups"]["shared"]["version"] == s["updates"]
    finally:
        ray.kill(registry, no_restart=True)


def test_float16_wire_is_trained_in_float32(tmp_path):
    """sg.wire_dtype=float16: the client sends half the bytes; the group trains on float32 copies."""
    from sharedsg.runtime.service.client import SGClient

    cfg, registry, learner, targets, model = service(tmp_path, "experiment.name=server-wire", "sg.policy=exact")
    try:
        client = SGClient(registry, "a", "shared", learner.dims, model, {}, start_seq=None, max_inflight=2,
                          wire_dtype="float16")
        client.push(targets, lag=0.0)
        client.push(targets, lag=0.0)
        client.flush()
        assert client.ledger.watermark == 2 and client.push_errors == 0
        version = ray.get(client.actor.drain.remote())  # both trained (an update on float16 would fail)
        state = client.pull(0)
        assert state.version == version >= 1 and all(v.dtype == torch.float32 for v in state.weights.values())
        s = ray.get(registry.state.remote())
        assert s["pushes"] == s["trained"] == 2 and s["streams"]["a"]["last_seq"] == 2
    finally:
        ray.kill(registry, no_restart=True)
