"""The runtime test helpers that the benchmarks use too: settled_state."""

import pytest

pytest.importorskip("ray")

from sharedsg.bench.raytools import settled_state  # noqa: E402


def test_settled_state_waits_until_every_group_answers():
    states = iter([{"groups": {"shared": {"error": "TimeoutError"}, "other": {"pid": 2}}},
                   {"groups": {"shared": {"pid": 1}, "other": {"pid": 2}}}])
    assert settled_state(lambda: next(states)) == {"groups": {"shared": {"pid": 1}, "other": {"pid": 2}}}


def test_settled_state_names_the_silent_groups_after_the_timeout():
    with pytest.raises(TimeoutError, match=r"\['shared'\] did not answer"):
        settled_state(lambda: {"groups": {"shared": {"error": "TimeoutError"}, "other": {"pid": 2}}}, timeout_s=0.0)
