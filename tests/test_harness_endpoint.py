"""LocalEndpoint: the in-process SG exchange's verbs and their guarantees (no Ray)."""

import pytest
import torch

from sharedsg.data.sources import make_source
from sharedsg.harness.endpoint import LocalEndpoint
from sharedsg.learn.sg import SGLearner
from sharedsg.learn.stream import StreamLearner


@pytest.fixture
def parts(small_cfg):
    """A group, two endpoints of it and three steps' real targets."""
    cfg = small_cfg()
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    src = make_source(cfg.data, "cyclist", "train", 0)
    targets = [learner.step(src.next_batch(4)).targets for _ in range(3)]
    group = SGLearner(cfg.model, cfg.sg, seed=0)
    return group, LocalEndpoint(group), LocalEndpoint(group), targets


def test_send_numbers_pushes_and_trains_each_once(parts):
    group, a, _, targets = parts
    for t in targets:
        a.send(t, lag=0.0)
    assert group.version == a.version == 3 and a.seq == 3
    assert set(a.losses) == {"sg/ic/loss", "sg/oc/loss", "sg/wc/loss"}
    assert a.info() == {"seq": 3, "acked": 3, "known_version": 3, "push_errors": 0, "max_in_flight": 0,
                        "blocking_pulls": 0,
                        "reconnects": 0, "resumed_from_server": False}


def test_version_is_what_this_endpoint_has_seen(parts):
    """Another stream's pushes move the group on; this endpoint learns of it by a flush, a pull or its own send."""
    group, a, b, targets = parts
    b.send(targets[0], lag=0.0)
    b.send(targets[1], lag=0.0)
    assert a.version == 0
    a.flush()
    assert a.version == 2
    a.send(targets[2], lag=2.0)
    assert a.version == group.version == 3


def test_refresh_fetches_the_weights_as_of_then_once(parts):
    group, a, b, targets = parts
    a.send(targets[0], lag=0.0)
    a.refresh(0)
    b.send(targets[1], lag=0.0)  # after the fetch: not in it
    a.refresh(0)  # one fetch at a time: ignored
    state = a.receive(0)
    assert state.version == 1
    assert a.receive(0) is None  # handed out once
    want = group.state().weights
    assert any(not torch.equal(state.weights[k], want[k]) for k in want)
    a.refresh(2)  # the group is not newer than 2: nothing to fetch
    assert a.receive(2) is None


def test_receive_drops_weights_not_newer_than_the_copy(parts):
    _, a, _, targets = parts
    a.send(targets[0], lag=0.0)
    a.refresh(0)
    assert a.receive(1) is None


def test_pull_is_blocking_and_counted(parts):
    group, a, b, targets = parts
    assert a.pull(-1).version == 0 and a.blocking_pulls == 1
    b.send(targets[0], lag=0.0)
    assert a.pull(1) is None and a.version == 1  # nothing newer, but the version is seen
    state = a.pull(0)
    assert state.version == 1 and a.blocking_pulls == 3
    assert all(torch.equal(v, group.state().weights[k]) for k, v in state.weights.items())


def test_predict_is_the_groups(parts):
    group, a, _, targets = parts
    a.send(targets[0], lag=0.0)
    t = targets[1]
    got, want = a.predict(t.h, t.y), group.predict(t.h, t.y)
    assert set(got) == {"ic", "oc", "wc"} and all(torch.equal(got[c], want[c]) for c in got)
