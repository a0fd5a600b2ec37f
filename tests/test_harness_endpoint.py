"""LocalEndpoint: the in-process SG exchange's verbs and their guarantees; ExchangeRule: which verbs a
step calls, in which order (no Ray)."""

import pytest
import torch

from sharedsg.data.sources import make_source
from sharedsg.harness.endpoint import ExchangeRule, LocalEndpoint
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


class _Recorder(LocalEndpoint):
    """A LocalEndpoint that records the verbs called (name, wait)."""

    def __init__(self, group: SGLearner) -> None:
        super().__init__(group)
        self.calls = []

    def send(self, targets, lag, wait=False):
        self.calls.append(("send", wait))
        super().send(targets, lag, wait)

    def flush(self):
        self.calls.append(("flush", False))
        super().flush()

    def refresh(self, have_version, wait=False):
        self.calls.append(("refresh", wait))
        super().refresh(have_version, wait)

    def receive(self, have_version, wait=False):
        self.calls.append(("receive", wait))
        return super().receive(have_version, wait)

    def pull(self, have_version):
        self.calls.append(("pull", False))
        return super().pull(have_version)


class _Copy:
    """Any holder of a group's weights (an API model's replica, a stream's learner)."""

    def __init__(self) -> None:
        self.sg_version = 0

    def load_sg(self, state) -> None:
        self.sg_version = state.version


@pytest.mark.parametrize("rule, before, after", [
    (ExchangeRule(1), [("receive", False)], [("send", False), ("refresh", False)]),
    (ExchangeRule(1, synchronous=True), [("receive", False)], [("send", False), ("flush", False), ("refresh", True)]),
    (ExchangeRule(2), [("receive", False)], [("send", False)]),
    (ExchangeRule(1, rpc=True), [], [("send", True)]),
])
def test_the_rule_calls_the_verbs_in_order(parts, rule, before, after):
    group, _, _, targets = parts
    ep, copy = _Recorder(group), _Copy()
    assert rule.before_step(ep, copy) == 0 and ep.calls == before
    ep.calls = []
    rule.after_step(ep, copy, targets[0], 0)
    assert ep.calls == after


def test_the_rule_waits_then_pulls_only_when_the_copy_is_too_far_behind(parts):
    """Another endpoint moved the group 3 versions on: receive, wait for the fetch, then pull."""
    group, _, other, targets = parts
    ep, copy = _Recorder(group), _Copy()
    for t in targets:
        other.send(t, lag=0.0)
    ep.flush()  # the endpoint sees version 3; its copy holds 0 and nothing was fetched
    ep.calls = []
    assert ExchangeRule(1).before_step(ep, copy) == 0 and copy.sg_version == 3
    assert ep.calls == [("receive", False), ("receive", True), ("pull", False)]
    ep.calls = []
    assert ExchangeRule(3).before_step(ep, _Copy()) == 3 and ep.calls == [("receive", False)]
