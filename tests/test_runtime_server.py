"""SGServer on a real local Ray: registration, idempotent pushes, pulls, rpc predictions, checkpoints."""

import pytest
import torch

ray = pytest.importorskip("ray")

from omegaconf import OmegaConf  # noqa: E402

from sharedsg.learn.stream import StreamLearner  # noqa: E402
from sharedsg.runtime import checkpoint  # noqa: E402
from sharedsg.runtime.server import server_actor  # noqa: E402
from sharedsg.runtime.testing import local_ray, tiny_config  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    with local_ray(num_cpus=2):
        yield


def test_server_protocol(tmp_path):
    cfg = tiny_config(tmp_path, "experiment.name=server-unit", "sg.checkpoint_every_pushes=2")
    server = server_actor(cfg, str(tmp_path / "run"), detached=False)
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    try:
        reg = ray.get(server.register.remote("cyclist", "shared", learner.dims, model))
        assert reg["group"] == "shared" and reg["version"] == 0
        bad = ray.get(server.register.remote("wide", "shared", dict(learner.dims, ic=16), model))
        assert "ic=16 (group has 8)" in bad["error"]

        x = torch.randn(8, 8, 2)
        from sharedsg.data.batch import Batch
        targets = learner.step(Batch(x, torch.randn(8, 8, 2))).targets
        first = ray.get(server.push.remote("cyclist", 1, 0, 0, *targets.parts()))
        again = ray.get(server.push.remote("cyclist", 1, 0, 0, *targets.parts()))  # a retried push
        assert first["applied"] and not again["applied"]
        assert first["version"] == again["version"] == 1
        assert ray.get(server.pull.remote("shared", 1)) is None
        state = ray.get(server.pull.remote("shared", 0))
        assert state.version == 1
        learner.load_sg(state)
        pred = ray.get(server.predict.remote("shared", targets.h, targets.y))
        local = learner.local_predict(targets.h, targets.y)
        for c in pred:
            assert torch.allclose(pred[c], local[c], atol=1e-6)
        ray.get(server.push.remote("cyclist", 2, 0, 0, *targets.parts()))
        s = ray.get(server.state.remote())
        assert s["pushes"] == 2 and s["duplicates"] == 1 and set(s["streams"]) == {"cyclist"}
        saved = checkpoint.load(checkpoint.server_checkpoint(tmp_path / "run"))  # weights_only=True
        assert saved["streams"]["cyclist"]["last_seq"] == 2 and saved["groups"]["shared"]["version"] == 2
    finally:
        ray.kill(server, no_restart=True)


def test_server_coalesces_queued_pushes_and_dedupes_out_of_order(tmp_path):
    """Pushes that queue while an update runs go into one update (group commit); sequence numbers
    are tracked exactly, so pushes applied out of order are neither lost nor applied twice."""
    cfg = tiny_config(tmp_path, "experiment.name=server-coalesce", "sg.updates_per_push=30",
                      "sg.coalesce_max=4", "sg.checkpoint_every_pushes=100")
    server = server_actor(cfg, str(tmp_path / "run"), detached=False)
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    from sharedsg.data.batch import Batch
    targets = [ray.put(p) for p in learner.step(Batch(torch.randn(8, 8, 2), torch.randn(8, 8, 2))).targets.parts()]
    try:
        for name in ("a", "b"):
            ray.get(server.register.remote(name, "shared", learner.dims, model))
        # 3 arrives before 1 and 2: all three applied once
        replies = ray.get([server.push.remote("a", s, 0, 0, *targets) for s in (3, 1, 2)])
        assert all(r["applied"] for r in replies)
        assert not ray.get(server.push.remote("a", 3, 0, 0, *targets))["applied"]
        # nine pushes at once, from two streams: the first update runs alone, the rest queue behind it
        refs = [server.push.remote(n, s, 0, 0, *targets) for s, n in [(s, n) for s in range(4, 9) for n in "ab"][:9]]
        replies = ray.get(refs)
        assert all(r["applied"] for r in replies)
        assert max(r["coalesced"] for r in replies) == 4  # capped by sg.coalesce_max
        s = ray.get(server.state.remote())
        assert s["pushes"] == 12 and s["duplicates"] == 1
        assert s["updates"] < 12 and s["updates"] + s["coalesced"] == 12
        assert s["groups"]["shared"]["version"] == s["updates"]
        assert s["streams"]["a"]["last_seq"] == 8 and s["streams"]["a"]["ahead"] == []
        # stream b says all its pushes up to 9 were acknowledged; this server has applied only 4-7 of
        # them (as after a crash that lost the rest): 1-3, 8 and 9 are counted lost
        assert s["streams"]["b"]["last_seq"] == 0 and s["streams"]["b"]["ahead"] == [4, 5, 6, 7]
        assert ray.get(server.push.remote("b", 10, 9, 0, *targets))["applied"]
        s = ray.get(server.state.remote())
        assert s["lost_pushes"] == 5 and s["streams"]["b"]["last_seq"] == 10 and s["streams"]["b"]["ahead"] == []
    finally:
        ray.kill(server, no_restart=True)
