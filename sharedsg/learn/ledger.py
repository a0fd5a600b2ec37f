"""``PushLedger``: which of one stream's pushes are done, exactly, in any order.

A stream numbers its pushes 1, 2, 3, ... (the SG protocol: docs/design.md, "One training step
of a stream", step 6). Replies and retried calls arrive in any order, so "done" is kept as a
contiguous **watermark** (every sequence number up to it is done) plus the set of done numbers
**ahead** of it. The same class keeps both sides' books:

- the SG server: a push is accepted once (:meth:`mark` is False for a duplicate); when the
  stream reports its acknowledgement watermark, :meth:`skip_to` counts the acknowledged
  pushes this server never saw (lost in a crash since its checkpoint);
- the stream: every push is resolved once (acknowledged or failed for good); its
  :attr:`watermark` is what it reports to the server. A stream that restarts without a
  checkpoint continues after the server's :attr:`high` (so nothing it sends is a "duplicate").
"""

from __future__ import annotations

from typing import Dict, Iterable, List


class PushLedger:
    """Sequence numbers done at most once, in any order: a watermark plus the ones ahead of it."""

    def __init__(self, watermark: int = 0, ahead: Iterable[int] = ()) -> None:
        self.watermark = int(watermark)
        self.ahead = {int(s) for s in ahead if int(s) > self.watermark}
        self._advance()

    def _advance(self) -> None:
        while self.watermark + 1 in self.ahead:
            self.watermark += 1
            self.ahead.discard(self.watermark)

    def done(self, seq: int) -> bool:
        return seq <= self.watermark or seq in self.ahead

    def mark(self, seq: int) -> bool:
        """Record ``seq`` as done; False when it was done already (a duplicate)."""
        seq = int(seq)
        if self.done(seq):
            return False
        self.ahead.add(seq)
        self._advance()
        return True

    def skip_to(self, seq: int) -> int:
        """Everything up to ``seq`` counts as done from now on; returns how many of those
        numbers were not marked here (the server: acknowledged pushes it has lost)."""
        seq = int(seq)
        if seq <= self.watermark:
            return 0
        known = sum(1 for s in self.ahead if s <= seq)
        missing = seq - self.watermark - known
        self.ahead = {s for s in self.ahead if s > seq}
        self.watermark = seq
        self._advance()
        return missing

    def missing(self, upto: int) -> List[int]:
        """The numbers up to ``upto`` not done here."""
        return [s for s in range(self.watermark + 1, int(upto) + 1) if s not in self.ahead]

    @property
    def high(self) -> int:
        """The largest sequence number done (the watermark when nothing is ahead)."""
        return max(self.ahead, default=self.watermark)

    @property
    def gaps(self) -> int:
        """Numbers below :attr:`high` not done yet (pushes still in flight or lost)."""
        return self.high - self.watermark - len(self.ahead)

    def state_dict(self) -> Dict[str, object]:
        return {"watermark": self.watermark, "ahead": sorted(self.ahead)}

    @classmethod
    def from_state(cls, state: Dict[str, object]) -> "PushLedger":
        ahead: List[int] = list(state.get("ahead", []))  # type: ignore[arg-type]
        return cls(int(state["watermark"]), ahead)  # type: ignore[arg-type]

    def copy(self) -> "PushLedger":
        return PushLedger(self.watermark, self.ahead)

    def __repr__(self) -> str:
        return f"PushLedger(watermark={self.watermark}, ahead={sorted(self.ahead)})"
