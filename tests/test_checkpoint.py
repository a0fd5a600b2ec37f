"""Atomic checkpoints (torch and JSON): round trip with weights_only, None when missing, a failed write keeps the old one."""

import pytest
import torch

from sharedsg import checkpoint


def test_round_trip_and_missing(tmp_path):
    path = tmp_path / "deep" / "ckpt.pt"
    assert checkpoint.load(path) is None
    checkpoint.save(path, {"w": torch.arange(3.0), "steps": 7, "names": ["a", "b"]})
    back = checkpoint.load(path)  # torch.load(weights_only=True)
    assert back["steps"] == 7 and back["names"] == ["a", "b"] and torch.equal(back["w"], torch.arange(3.0))


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    checkpoint.save(path, {"version": 1})
    with pytest.raises(Exception):
        checkpoint.save(path, {"version": 2, "bad": lambda: None})  # cannot be pickled: fails mid-write
    assert checkpoint.load(path) == {"version": 1}


def test_json_round_trip_missing_and_a_failed_write(tmp_path):
    """The registry's checkpoint: plain JSON, None when missing, a failed write keeps the old one."""
    path = tmp_path / "deep" / "server.json"
    assert checkpoint.load_json(path) is None
    state = {"groups": {"shared": {"slots": 10}}, "streams": {"cyclist": "shared"}, "pushes": 3}
    checkpoint.save_json(path, state)
    assert checkpoint.load_json(path) == state
    with pytest.raises(TypeError):
        checkpoint.save_json(path, {"pushes": 4, "bad": torch.zeros(1)})  # not JSON: nothing written
    assert checkpoint.load_json(path) == state


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_checkpoint_is_one_line_naming_it_and_is_left_as_it_is(tmp_path, damage):
    path = tmp_path / "ckpt.pt"
    checkpoint.save(path, {"w": torch.arange(100.0), "steps": 7})
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint", "empty": b""}[damage])
    before = path.read_bytes()
    with pytest.raises(checkpoint.DamagedCheckpoint) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert message.startswith(f"checkpoint {path} is damaged (") and "\n" not in message
    assert message.endswith(f"move it away (e.g. to {path}.damaged) and run the same command again")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_a_damaged_json_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "server.json"
    path.write_text('{"pushes": 3')
    with pytest.raises(checkpoint.DamagedCheckpoint, match=r"checkpoint .*server.json is damaged \(JSONDecodeError"):
        checkpoint.load_json(path)
