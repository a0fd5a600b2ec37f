"""``Ingest``: the targets an SG group has accepted and not yet trained on (Eq. 11), by policy.

- ``exact``: first in, first out; every accepted target set is trained on once, in arrival
  order (the in-process reference). The queue holds at most ``capacity`` sets: when it is
  full the server makes the next push wait (back-pressure), it never drops one.
- ``buffered``: the newest ``capacity`` target sets; the learner takes the newest first, at its
  own pace. A push into a full buffer evicts the oldest set, which is returned so the server
  counts it (``overflow``), never silently.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Deque, List, Optional

from sharedsg.config import SGConfig
from sharedsg.configcheck import choices_of

if TYPE_CHECKING:  # torch-free at run time: the SG service's registry imports this module
    from sharedsg.learn.types import SGTargets

POLICIES = choices_of(SGConfig, "policy")  # exact | buffered


@dataclass
class Pending:
    """One accepted push: whose, its sequence number, its targets."""

    stream: str
    seq: int
    targets: SGTargets


class Ingest:
    def __init__(self, policy: str, capacity: int) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown SG update policy '{policy}' (one of {', '.join(POLICIES)})")
        self.policy = policy
        self.capacity = max(1, int(capacity))
        self._items: Deque[Pending] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        """``exact`` only: a push must wait until the learner has taken some."""
        return self.policy == "exact" and len(self._items) >= self.capacity

    def put(self, item: Pending) -> Optional[Pending]:
        """Add an accepted push; the set evicted by it (``buffered`` and full), else None."""
        evicted = None
        if len(self._items) >= self.capacity:
            if self.policy == "exact":
                raise OverflowError("exact ingest queue is full: wait until full() is False")
            evicted = self._items.popleft()
        self._items.append(item)
        return evicted

    def take(self, n: int) -> List[Pending]:
        """The next ``n`` sets for one update: the oldest (``exact``) or the newest (``buffered``)."""
        n = min(max(0, int(n)), len(self._items))
        if self.policy == "exact":
            return [self._items.popleft() for _ in range(n)]
        return [self._items.pop() for _ in range(n)][::-1]
