"""Ending actors without noise on the user's terminal.

``ray.kill`` has the actor's raylet send SIGTERM and, 200 ms later, SIGKILL (Ray 2.60 raylet log:
``DisconnectClient: sending SIGTERM``). Ray's SIGTERM handler in a worker raises ``SystemExit``
wherever the worker is; when that is inside a ``__del__`` (an ``ActorHandle`` being collected,
which a stream actor does all the time), Python prints "Exception ignored in ... Traceback" to the
worker's stderr, and Ray forwards it to the driver's terminal: after Ctrl-C, 1 run in 7 under
load printed it. ``__ray_terminate__`` instead ends the actor from inside, after the task it is
running, with no signal. Its name stays taken after that (Ray 2.60: a second run of the same
experiment could not create its registry), so ``ray.kill`` follows for every actor: for one that
has ended it only releases the name in the GCS (no signal: its worker is gone), and it kills
those that did not end in time.
"""

from __future__ import annotations

from typing import Any, Iterable

import ray

STOP_TIMEOUT_S = 10.0  # how long stop_actors waits for actors to end by themselves before killing them


def stop_actors(actors: Iterable[Any], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """End ``actors`` (handles, in any state) without restarts and free their names: each ends
    itself after its running task; those still running after ``timeout_s`` (seconds, all
    together) are killed."""
    actors = list(actors)
    refs = {}
    for actor in actors:
        try:
            # no retry: an actor with max_task_retries would re-send it and log "Task ... failed"
            refs[actor.__ray_terminate__.options(max_task_retries=0).remote()] = actor
        except ray.exceptions.RayError:  # already gone
            continue
    if refs:
        ray.wait(list(refs), num_returns=len(refs), timeout=max(0.0, timeout_s))
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except ValueError:  # not an actor handle Ray knows
            continue
