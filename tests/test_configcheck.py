"""The field declarations and the generic validator of sharedsg/configcheck.py, on a small schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import pytest
from omegaconf import OmegaConf

from sharedsg.configcheck import Bounds, ConfigError, bounded, check_layer, check_values, choice, matching


@dataclass
class Inner:
    every: int = bounded(1, ge=1)


@dataclass
class Schema:
    mode: str = choice("a", "b", default="b")
    modes: List[str] = choice("a", "b", factory=lambda: ["a"])
    rate: float = bounded(0.5, gt=0, lt=1)
    seeds: List[int] = bounded(factory=lambda: [0], ge=0)
    seed: int = bounded(-1, ge=0, also=(-1,))
    flag: bool = False
    name: str = matching("x", r"[a-z]+", "lower-case letters")
    inner: Inner = field(default_factory=Inner)
    items: Dict[str, Inner] = field(default_factory=lambda: {"one": Inner()})


def _check(**values):
    cfg = OmegaConf.merge(OmegaConf.structured(Schema), values)
    check_values(cfg, Schema)


def test_declarations_keep_their_defaults():
    s = Schema()
    assert (s.mode, s.modes, s.rate, s.seeds, s.seed, s.name) == ("b", ["a"], 0.5, [0], -1, "x")
    _check()


@pytest.mark.parametrize("bounds, integer, words", [
    (Bounds(ge=0), True, "non-negative"),
    (Bounds(gt=0), False, "positive"),
    (Bounds(ge=1), True, "positive"),
    (Bounds(ge=1), False, "at least 1"),
    (Bounds(ge=2), True, "at least 2"),
    (Bounds(gt=2.5), False, "greater than 2.5"),
    (Bounds(le=3), True, "at most 3"),
    (Bounds(lt=3), True, "less than 3"),
    (Bounds(ge=0, le=1), False, "in [0, 1]"),
    (Bounds(gt=0, lt=1), False, "in (0, 1)"),
    (Bounds(ge=0, also=(-1,)), True, "-1 or >= 0"),
])
def test_bounds_describe_themselves(bounds, integer, words):
    assert bounds.describe(integer) == words


def test_bounds_admit():
    b = Bounds(ge=0, lt=1, also=(-1,))
    assert [b.admits(v) for v in (-1, -0.5, 0, 0.99, 1)] == [True, False, True, True, False]


@pytest.mark.parametrize("values, message", [
    ({"mode": "c"}, "config error: mode: 'c' is not one of a, b"),
    ({"modes": ["a", "z"]}, "config error: modes: 'z' is not one of a, b"),
    ({"rate": 1.0}, "config error: rate: must be in (0, 1), got 1.0"),
    ({"rate": float("nan")}, "config error: rate: must be a finite number, got nan"),
    ({"seeds": [1, -2]}, "config error: seeds[1]: must be non-negative, got -2"),
    ({"seed": -3}, "config error: seed: must be -1 or >= 0, got -3"),
    ({"name": "X1"}, "config error: name: 'X1' must be lower-case letters"),
    ({"inner": {"every": 0}}, "config error: inner.every: must be positive, got 0"),
    ({"items": {"two": {"every": -1}}}, "config error: items.two.every: must be positive, got -1"),
])
def test_check_values_names_the_key(values, message):
    with pytest.raises(ConfigError) as info:
        _check(**values)
    assert str(info.value) == message


@pytest.mark.parametrize("layer, message", [
    ({"inner": 3}, "config error: inner: must be a mapping of settings, got 3"),
    ({"items": [1]}, "config error: items: must be a mapping of settings, got [1]"),
    ({"items": {"two": "x"}}, "config error: items.two: must be a mapping of settings, got 'x'"),
    ({"items": {"two": {"inner": 1, "every": True}}}, None),  # unknown keys and types are left to the merge
    ({"flag": 1}, "config error: flag: must be true or false, got 1"),
    ({"flag": "yes"}, "config error: flag: must be true or false, got 'yes'"),
    ({"modes": "a"}, "config error: modes: must be a list, e.g. ['a'], got 'a'"),
    ({"flag": True, "mode": None, "unknown": 1}, None),
])
def test_check_layer_catches_what_a_merge_hides(layer, message):
    if message is None:
        check_layer(OmegaConf.create(layer), Schema)
        return
    with pytest.raises(ConfigError) as info:
        check_layer(OmegaConf.create(layer), Schema)
    assert str(info.value) == message


def test_interpolations_are_checked_after_resolving():
    check_layer(OmegaConf.create({"flag": "${inner.every}"}), Schema)  # not a bool yet: the merge resolves it
    with pytest.raises(ConfigError, match=r"config error: seed: must be -1 or >= 0, got -5"):
        _check(seed="${items.one.every}", items={"one": {"every": -5}}, inner={"every": 1})


@pytest.mark.parametrize("key, value, message", [
    ("rate", "fast", "config error: rate: must be a number, got 'fast'"),
    ("seed", 1.5, "config error: seed: must be an integer, got 1.5"),
    ("seed", True, "config error: seed: must be an integer, got True"),
    ("flag", 0, "config error: flag: must be true or false, got 0"),
    ("name", 7, "config error: name: must be a string, got 7"),
])
def test_types_are_checked_without_a_schema_merge(key, value, message):
    """validate() may see a config that was not merged with the dataclasses (e.g. read back from a run)."""
    plain = OmegaConf.create({**OmegaConf.to_container(OmegaConf.structured(Schema)), key: value})
    with pytest.raises(ConfigError) as info:
        check_values(plain, Schema)
    assert str(info.value) == message
