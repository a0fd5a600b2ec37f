"""Stream: the SG exchange of one step (Stream.train) over the in-process endpoint: the staleness
rule, the blocking pull, the order of a step, the rpc transport."""

import pytest

from sharedsg.harness.endpoint import LocalEndpoint
from sharedsg.harness.stream import Stream, group_of, stream_seed
from sharedsg.learn.sg import SGLearner


def joined(cfg, group=None):
    """Both streams of ``cfg`` joined to one in-process SG group."""
    group = group or SGLearner(cfg.model, cfg.sg, seed=0)
    streams = {n: Stream(cfg, n) for n in cfg.streams}
    for s in streams.values():
        s.join(LocalEndpoint(group))
    return group, streams


@pytest.mark.parametrize("max_staleness", [0, 1, 3, 4])
def test_copy_never_lags_more_than_max_staleness_and_blocking_pull_fires_when_it_would(small_cfg, max_staleness):
    """pedestrian moves the shared group 4 versions on; cyclist sees that version (flush) and steps:
    it pulls (blocking) exactly when its copy is more than sg.max_staleness versions behind."""
    cfg = small_cfg("streams.pedestrian.data_class=pedestrian", f"sg.max_staleness={max_staleness}")
    group, s = joined(cfg)
    a, b = s["cyclist"], s["pedestrian"]
    assert a.endpoint.info()["blocking_pulls"] == 1  # joining pulls the group's weights
    for _ in range(4):
        b.train()
    a.endpoint.flush()
    assert a.endpoint.version - a.learner.sg_version == 4
    m = a.train()
    pulled = a.endpoint.info()["blocking_pulls"] - 1
    assert pulled == (1 if 4 > max_staleness else 0)
    assert m["sg/version_lag"] == (0 if pulled else 4)
    lags = [m["sg/version_lag"]]
    for _ in range(6):
        lags += [b.train()["sg/version_lag"], a.train()["sg/version_lag"]]
    assert max(lags) <= max_staleness
    assert group.version == 4 + 1 + 12


def test_one_stream_steps_on_the_weights_of_its_last_push(small_cfg):
    """A stream alone in its group: each push is fetched after it is sent and loaded before the next
    step, so every step after the first uses the group's newest weights (lag 0)."""
    cfg = small_cfg()
    group, s = joined(cfg)
    stream = s["cyclist"]
    for i in range(3):
        m = stream.train()
        assert m["sg/version"] == i + 1 and m["sg/version_lag"] == 0
        assert stream.learner.sg_version == i  # the fetch is loaded at the next step
    assert stream.endpoint.seq == 3 and stream.endpoint.info()["blocking_pulls"] == 1


def test_rpc_steps_with_the_groups_predictions(small_cfg):
    """rpc: the group predicts; for one stream that is what a replica copy never behind computes."""
    losses = {}
    for transport in ("rpc", "replica"):
        cfg = small_cfg(f"sg.transport={transport}", "sg.max_staleness=0")
        _, s = joined(cfg)
        losses[transport] = [s["cyclist"].train()["loss/train"] for _ in range(4)]
        if transport == "rpc":
            assert s["cyclist"].learner.sg_version == 0  # no copy is fetched
    assert losses["rpc"] == pytest.approx(losses["replica"], abs=1e-6)


def test_a_stream_without_a_group_only_steps(small_cfg):
    stream = Stream(small_cfg(), "cyclist")
    m = stream.train()
    assert "loss/train" in m and "sg/version" not in m and stream.learner.steps == 1


def test_group_and_seed_are_decided_here(small_cfg):
    cfg = small_cfg("streams.pedestrian.data_class=pedestrian", "sg.sharing=separate")
    assert group_of(cfg, "pedestrian") == "pedestrian"
    assert stream_seed(cfg, "pedestrian") == 1
