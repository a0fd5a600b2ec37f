"""PushLedger without Ray: out of order, duplicates, gaps, restarts with and without a checkpoint."""

import random

import torch

from sharedsg.learn.ledger import PushLedger


def test_out_of_order_and_duplicates():
    ledger = PushLedger()
    assert [ledger.mark(s) for s in (3, 1, 2)] == [True, True, True]
    assert ledger.watermark == 3 and ledger.ahead == set()
    assert not ledger.mark(2) and not ledger.mark(3)  # retried calls
    assert ledger.mark(5) and ledger.watermark == 3 and ledger.ahead == {5}
    assert ledger.done(5) and not ledger.done(4) and ledger.high == 5 and ledger.gaps == 1
    assert ledger.mark(4) and ledger.watermark == 5 and ledger.gaps == 0


def test_any_order_is_exactly_once():
    rng = random.Random(0)
    seqs = list(range(1, 201)) * 2  # every push delivered twice
    rng.shuffle(seqs)
    ledger = PushLedger()
    applied = [s for s in seqs if ledger.mark(s)]
    assert sorted(applied) == list(range(1, 201))
    assert ledger.watermark == 200 and not ledger.ahead


def test_gap_counted_when_the_other_side_skips_past_it():
    server = PushLedger()
    for s in (1, 2, 4, 7):
        server.mark(s)
    # the stream says 1..8 were all acknowledged: 3, 5, 6 and 8 were never seen here
    assert server.skip_to(8) == 4
    assert server.watermark == 8 and server.ahead == set()
    assert server.skip_to(5) == 0  # behind the watermark: nothing to count
    server.mark(10)
    assert server.skip_to(9) == 1 and server.watermark == 10  # 9 missing; 10 joins the watermark


def test_server_restart_from_checkpoint_counts_lost_pushes():
    """The server checkpoints its ledger, accepts more pushes, crashes: the pushes after the
    checkpoint that the stream saw acknowledged are counted as lost, no more, no less."""
    server, stream = PushLedger(), PushLedger()
    for s in range(1, 11):
        server.mark(s)
        stream.mark(s)  # acknowledged
        if s == 6:
            saved = torch.load(_roundtrip(server.state_dict()), weights_only=True)
    restored = PushLedger.from_state(saved)
    assert restored.watermark == 6
    assert restored.skip_to(stream.watermark) == 4  # 7..10
    assert restored.mark(11) and not restored.mark(10)


def test_stream_restart_from_checkpoint_redoes_steps_as_duplicates():
    """A stream restored at seq 6 redoes step 7: the server already has it (a duplicate, not applied twice)."""
    server = PushLedger()
    for s in range(1, 8):
        server.mark(s)
    stream = PushLedger(watermark=6)  # from its checkpoint
    assert not server.mark(7)
    stream.mark(7)
    assert server.mark(8) and stream.mark(8)
    assert server.watermark == stream.watermark == 8


def test_stream_restart_without_checkpoint_continues_after_the_server():
    """Without a checkpoint a stream restarts at the server's high mark, so none of its new
    pushes is dropped as a duplicate, even with older ones still ahead of the watermark."""
    server = PushLedger()
    for s in (1, 2, 3, 5, 6):  # 4 was in flight when the stream died
        server.mark(s)
    start = server.high
    stream = PushLedger(watermark=start)
    fresh = [start + i for i in range(1, 6)]
    assert all(server.mark(s) for s in fresh)
    for s in fresh:
        stream.mark(s)
    assert server.skip_to(stream.watermark) == 1  # only the push in flight at the crash is unaccounted
    assert server.watermark == 11 and not server.ahead


def test_state_roundtrip():
    ledger = PushLedger(3, [5, 9, 2])
    assert ledger.ahead == {5, 9}
    again = PushLedger.from_state(ledger.state_dict())
    assert again.watermark == 3 and again.ahead == {5, 9}
    copy = ledger.copy()
    copy.mark(4)
    assert ledger.watermark == 3 and copy.watermark == 5


def _roundtrip(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_missing_lists_what_skip_to_counts():
    ledger = PushLedger(2, [4, 6])
    assert ledger.missing(7) == [3, 5, 7]
    assert ledger.skip_to(7) == 3
