"""Ingest policies without Ray: exact is FIFO and lossless, buffered keeps the newest and counts overflow."""

import pytest
import torch

from sharedsg.learn.ingest import Ingest, Pending
from sharedsg.learn.types import SGTargets


def item(seq):
    t = torch.full((1, 2, 3), float(seq))
    return Pending("a", seq, SGTargets({"ic": t}, t, {"ic": t}))


def test_exact_is_fifo_and_never_drops():
    q = Ingest("exact", 3)
    for s in (1, 2, 3):
        assert q.put(item(s)) is None
    assert q.full()
    with pytest.raises(OverflowError):
        q.put(item(4))
    assert [p.seq for p in q.take(2)] == [1, 2]
    assert not q.full() and len(q) == 1
    assert [p.seq for p in q.take(5)] == [3]


def test_buffered_keeps_the_newest_and_returns_what_it_evicts():
    q = Ingest("buffered", 3)
    evicted = [q.put(item(s)) for s in range(1, 6)]
    assert [e.seq for e in evicted if e is not None] == [1, 2]
    assert not q.full()  # buffered never makes a push wait
    assert [p.seq for p in q.take(2)] == [4, 5]  # newest first, returned in arrival order
    assert [p.seq for p in q.take(2)] == [3]


def test_unknown_policy():
    with pytest.raises(ValueError, match="exact, buffered"):
        Ingest("lifo", 3)
