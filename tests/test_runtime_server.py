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
        reg = ray.get(server.register.remote("cyclist", learner.dims, model))
        assert reg["group"] == "shared" and reg["version"] == 0
        bad = ray.get(server.register.remote("wide", dict(learner.dims, ic=16), model))
        assert "ic=16 (group has 8)" in bad["error"]

        x = torch.randn(8, 8, 2)
        from sharedsg.data.batch import Batch
        targets = learner.step(Batch(x, torch.randn(8, 8, 2))).targets
        first = ray.get(server.push.remote("cyclist", 1, targets))
        again = ray.get(server.push.remote("cyclist", 1, targets))  # a retried push
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
        ray.get(server.push.remote("cyclist", 2, targets))
        s = ray.get(server.state.remote())
        assert s["pushes"] == 2 and s["duplicates"] == 1 and set(s["streams"]) == {"cyclist"}
        saved = checkpoint.load(checkpoint.server_checkpoint(tmp_path / "run"))  # weights_only=True
        assert saved["streams"]["cyclist"]["last_seq"] == 2 and saved["groups"]["shared"]["version"] == 2
    finally:
        ray.kill(server, no_restart=True)
