"""RayEndpoint on a real local Ray: the exchange's guarantees over the SG service (in-flight
bound, staleness and the blocking pull), with streams driven from this process."""

import pytest

ray = pytest.importorskip("ray")

from omegaconf import OmegaConf  # noqa: E402

from sharedsg.harness.stream import Stream  # noqa: E402
from sharedsg.runtime.service.client import SGClient  # noqa: E402
from sharedsg.runtime.service.endpoint import RayEndpoint  # noqa: E402
from sharedsg.runtime.service.registry import registry_actor  # noqa: E402
from sharedsg.bench.raytools import tiny_config  # noqa: E402

pytestmark = pytest.mark.usefixtures("ray_session")  # the test run's one Ray (tests/conftest.py)


@pytest.fixture
def service(tmp_path):
    """``start(*overrides)``: a config, its SG service and its two streams joined to it through RayEndpoints."""
    registries = []

    def start(*overrides):
        cfg = tiny_config(tmp_path, "sg.sharing=shared", *overrides)
        registry = registry_actor(cfg, str(tmp_path / cfg.experiment.name), detached=False)
        registries.append(registry)
        model = OmegaConf.to_container(cfg.model, resolve=True)
        streams = {}
        for name in cfg.streams:
            s = Stream(cfg, name)
            client = SGClient(registry, name, s.group, s.learner.dims, model, {}, start_seq=None,
                              max_inflight=int(cfg.sg.max_inflight_pushes))
            assert client.error is None, client.error
            s.join(RayEndpoint(client))
            streams[name] = s
        return cfg, registry, streams

    yield start
    for registry in registries:
        ray.kill(registry, no_restart=True)


@pytest.mark.parametrize("max_inflight", [1, 3])
def test_in_flight_pushes_never_exceed_max_inflight_pushes(service, max_inflight):
    """Pushes sent as fast as the driver can, to a group that acknowledges only when its one-set
    queue has room: the un-acknowledged pushes reach sg.max_inflight_pushes and never exceed it."""
    cfg, registry, streams = service(f"sg.max_inflight_pushes={max_inflight}", "sg.policy=exact",
                                     "sg.buffer_size=1", "sg.coalesce_max=1", f"experiment.name=inflight-{max_inflight}")
    stream = streams["cyclist"]
    targets = [stream.learner.step(stream.train_src.next_batch(stream.batch_size)).targets for _ in range(3)]
    ep = stream.endpoint
    seen = []
    for i in range(24):
        ep.send(targets[i % 3], lag=0.0)
        seen.append(len(ep.client.pending))
    ep.flush()
    info = ep.info()
    state = ray.get(registry.state.remote())
    assert max(seen) <= max_inflight and info["max_in_flight"] == max_inflight, (seen, info)
    assert info["seq"] == info["acked"] == 24 and info["push_errors"] == 0
    assert state["streams"]["cyclist"]["pushes"] == state["trained"] == 24


@pytest.mark.parametrize("max_staleness", [0, 2, 4])
def test_copy_never_lags_more_than_max_staleness_and_blocking_pull_fires_when_it_would(service, max_staleness):
    """pedestrian moves the shared group 4 versions on; cyclist sees that version (flush) and steps: it
    pulls exactly when its copy is more than sg.max_staleness behind. Then both step, their pushes
    in flight: no step's copy lags more than sg.max_staleness versions behind the newest one seen."""
    cfg, registry, s = service(f"sg.max_staleness={max_staleness}", "sg.coalesce_max=1", "sg.policy=exact",
                               f"experiment.name=stale-{max_staleness}")
    a, b = s["cyclist"], s["pedestrian"]
    for _ in range(4):
        b.train()
    b.endpoint.flush()
    a.endpoint.flush()
    assert a.endpoint.version - a.learner.sg_version == 4
    before = a.endpoint.info()["blocking_pulls"]
    m = a.train()
    pulled = a.endpoint.info()["blocking_pulls"] - before
    assert pulled == (1 if 4 > max_staleness else 0)
    assert m["sg/version_lag"] == (0 if pulled else 4)
    lags = [m["sg/version_lag"]]
    for _ in range(8):
        lags += [b.train()["sg/version_lag"], a.train()["sg/version_lag"]]
    assert max(lags) <= max_staleness, lags
