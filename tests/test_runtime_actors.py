"""stop_actors: actors end by themselves (no SIGTERM that could print a traceback), stragglers are killed."""

import os
import signal
import time

import pytest

ray = pytest.importorskip("ray")

from sharedsg.runtime.hosting.actors import stop_actors  # noqa: E402


pytestmark = pytest.mark.usefixtures("ray_session")  # the test run's one Ray (tests/conftest.py)


@ray.remote(max_restarts=-1)
class Marker:
    """Writes a line to ``path`` when it gets SIGTERM (what ray.kill sends), then exits."""

    def __init__(self, path: str) -> None:
        self.path = path

        def on_term(signum, frame):
            with open(path, "a") as f:
                f.write("SIGTERM\n")
            os._exit(1)

        signal.signal(signal.SIGTERM, on_term)

    def pid(self) -> int:
        return os.getpid()

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass


def _dead(actor) -> bool:
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.pid.remote(), timeout=30)
    return True


def test_idle_actors_end_by_themselves_without_a_signal(tmp_path):
    paths = [tmp_path / f"a{i}.txt" for i in range(3)]
    actors = [Marker.remote(str(p)) for p in paths]
    ray.get([a.pid.remote() for a in actors])
    t0 = time.monotonic()
    stop_actors(actors)
    assert time.monotonic() - t0 < 5
    assert all(_dead(a) for a in actors)  # not restarted although max_restarts=-1
    time.sleep(0.5)
    assert not any(p.exists() for p in paths), "an actor got SIGTERM"


def test_a_busy_actor_ends_after_its_task_and_a_stuck_one_is_killed(tmp_path):
    busy, stuck = Marker.remote(str(tmp_path / "busy.txt")), Marker.remote(str(tmp_path / "stuck.txt"))
    ray.get([busy.pid.remote(), stuck.pid.remote()])
    done = busy.spin.remote(1.0)
    stuck.spin.remote(120.0)
    time.sleep(0.2)
    t0 = time.monotonic()
    stop_actors([busy, stuck], timeout_s=3.0)
    assert time.monotonic() - t0 < 10
    ray.get(done, timeout=5)  # the running task finished first
    assert _dead(busy) and _dead(stuck)
    assert not (tmp_path / "busy.txt").exists()


def test_their_names_are_free_again(tmp_path):
    """A second run of an experiment re-creates its named actors (registry, groups, streams)."""
    a = Marker.options(name="stop-actors-test", namespace="sharedsg-test").remote(str(tmp_path / "a.txt"))
    ray.get(a.pid.remote())
    stop_actors([a])
    with pytest.raises(ValueError):
        ray.get_actor("stop-actors-test", namespace="sharedsg-test")
    b = Marker.options(name="stop-actors-test", namespace="sharedsg-test").remote(str(tmp_path / "b.txt"))
    assert ray.get(b.pid.remote(), timeout=30) > 0
    stop_actors([b])
    assert not (tmp_path / "a.txt").exists() and not (tmp_path / "b.txt").exists()


def test_actors_already_gone_are_no_error(tmp_path):
    a = Marker.remote(str(tmp_path / "a.txt"))
    ray.get(a.pid.remote())
    ray.kill(a, no_restart=True)
    time.sleep(0.5)
    stop_actors([a], timeout_s=2.0)
    assert _dead(a)
