"""``SGClient``: a stream's side of the SG protocol on Ray, the transport under
:class:`~sharedsg.runtime.service.endpoint.RayEndpoint` (and the server benchmark's pushers).

- registers with the experiment's registry and talks to its group's actor from then on;
- numbers its pushes and never has more than ``max_inflight`` of them un-acknowledged; a
  :class:`~sharedsg.learn.ledger.PushLedger` resolves the replies (they come in any order) into
  the acknowledgement watermark sent with every push;
- starts its sequence numbers at its checkpoint's, or, without one, after the group's high mark
  for it (a restarted or re-attached stream: nothing it sends is dropped as a duplicate);
- fetches weights by version: ``pull`` returns an ``ObjectRef`` put once per version, which
  every stream of a node reads from the object store; the blocking pulls' latencies go to
  the server with the next push (``pull_s``).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import numpy as np
import ray

from sharedsg.learn.ledger import PushLedger
from sharedsg.learn.types import SGState, SGTargets


class SGClient:
    def __init__(self, registry: Any, name: str, group: str, dims: Dict[str, int], model: Dict[str, Any],
                 info: Dict[str, Any], *, start_seq: Optional[int], max_inflight: int,
                 wire_dtype: str = "float32") -> None:
        self.wire = np.dtype(wire_dtype)
        self.registry, self.name, self.group = registry, name, group
        self._register_args = (dims, model, dict(info, checkpoint_seq=start_seq))
        self.max_inflight = max(1, int(max_inflight))
        self.pending: Dict[ray.ObjectRef, int] = {}  # pushes in flight -> their sequence numbers
        self.pull_s: List[float] = []  # blocking pull latencies not yet reported
        self.last_losses: Dict[str, float] = {}
        self.push_errors = 0
        self.max_in_flight = 0  # the most pushes ever un-acknowledged at once
        self.blocking_pulls = 0
        self.reconnects = 0
        self.error: Optional[str] = None
        reg = self._register()
        if self.error is not None:
            return
        self.seq = int(start_seq) if start_seq is not None else int(reg["high"])  # the last push's number
        self.ledger = PushLedger(self.seq)  # resolved pushes: the acknowledgement watermark
        self.resumed_from_server = start_seq is None and int(reg["high"]) > 0
        self.known_version = int(reg["version"])

    def _register(self) -> Dict[str, Any]:
        dims, model, info = self._register_args
        reg = ray.get(self.registry.register.remote(self.name, self.group, dims, model, info))
        self.error = reg.get("error")
        if self.error is None:
            self.actor = reg["actor"]
            self.group = reg["group"]
        return reg

    def _reconnect(self) -> None:
        """The group actor went away for good (its registry restarted it): register again, keep the numbering."""
        self.reconnects += 1
        self._register_args[2]["checkpoint_seq"] = self.seq
        self._register()

    # -- pushes ---------------------------------------------------------------------------------
    def push(self, targets: SGTargets, lag: Optional[float] = None, wait: bool = False) -> None:
        """Send one step's targets; wait for its acknowledgement (``wait``). Before it goes out, wait
        until fewer than ``max_inflight`` pushes are in flight, so there are never more."""
        self.poll(self.max_inflight - 1)
        self.seq += 1
        meta = {"acked": self.ledger.watermark, "in_flight": len(self.pending) + 1, "lag": lag,
                "pull_s": self.pull_s, "before": sorted(self.pending.values())}
        self.pull_s = []
        parts = targets.parts()
        if self.wire != np.float32:  # narrower on the wire; the group trains in float32
            parts = tuple(p.astype(self.wire) if isinstance(p, np.ndarray) and p.dtype == np.float32 else p
                          for p in parts)
        ref = self.actor.push.remote(self.name, self.seq, meta, *parts)
        self.pending[ref] = self.seq
        self.max_in_flight = max(self.max_in_flight, len(self.pending))
        if wait:
            self.poll(0)

    def poll(self, wait_for: int = 0) -> None:
        """Collect the acknowledgements that are in, waiting until at most ``wait_for`` pushes are in flight."""
        if not self.pending:
            return
        refs = list(self.pending)
        need = max(0, len(refs) - wait_for)
        ready, rest = ray.wait(refs, num_returns=len(refs), timeout=0)
        if len(ready) < need:
            more, _ = ray.wait(rest, num_returns=need - len(ready))
            ready += more
        gone = False
        for ref in ready:
            seq = self.pending.pop(ref)
            self.ledger.mark(seq)  # acknowledged, a duplicate, or failed for good: resolved
            try:
                reply = ray.get(ref)
            except ray.exceptions.ActorDiedError:
                self.push_errors += 1
                gone = True
                continue
            except ray.exceptions.RayError:
                self.push_errors += 1
                continue
            if "error" in reply:
                self.push_errors += 1
                continue
            self.known_version = max(self.known_version, int(reply["version"]))
            if reply.get("losses"):
                self.last_losses = reply["losses"]
        if gone:
            self._reconnect()

    def flush(self) -> None:
        self.poll(0)

    # -- weights ---------------------------------------------------------------------------------
    def weights_of(self, reply: Optional[Dict[str, Any]]) -> Optional[SGState]:
        """The weights a ``pull`` reply refers to (None: nothing newer); its version is seen."""
        if reply is None:
            return None
        self.known_version = max(self.known_version, int(reply["version"]))
        return ray.get(reply["ref"])

    def pull(self, since_version: int = -1) -> Optional[SGState]:
        """The group's weights if newer than ``since_version`` (blocking; the latency is reported)."""
        t0 = time.perf_counter()
        self.blocking_pulls += 1
        try:
            state = self.weights_of(ray.get(self.actor.pull.remote(since_version)))
        except ray.exceptions.ActorDiedError:
            self._reconnect()
            state = self.weights_of(ray.get(self.actor.pull.remote(since_version)))
        self.pull_s.append(time.perf_counter() - t0)
        return state

    def info(self) -> Dict[str, Any]:
        return {"seq": self.seq, "acked": self.ledger.watermark, "known_version": self.known_version,
                "push_errors": self.push_errors, "max_in_flight": self.max_in_flight,
                "blocking_pulls": self.blocking_pulls, "reconnects": self.reconnects,
                "resumed_from_server": self.resumed_from_server}
