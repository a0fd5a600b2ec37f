"""Field declarations with their allowed values, and the one validator that checks them.

A field of the config dataclasses (:mod:`sharedsg.config`) declares what it accepts once,
next to its default, in the field's metadata:

* ``choice("lstm", "conv")``: one of the listed values (the first is the default unless
  ``default=`` says otherwise); on a list field every element must be one of them;
* ``bounded(10, ge=1)``: a number within bounds (``ge``/``gt``/``le``/``lt``), optionally
  with ``also=(-1,)`` for a sentinel outside them; on a list field, every element;
* ``matching("cpu", r"cpu|cuda(:\\d+)?", "cpu, cuda or cuda:N")``: a string matching a pattern;
* ``folder_name("experiment")``: a name that becomes one folder under ``experiment.storage``
  (:func:`is_folder_name`), so that no name can lead a run's files out of it.

:func:`check_layer` looks at one raw layer (a YAML file or the command-line overrides)
before it is merged, for the mistakes OmegaConf would silently convert or report without
the key (a section given a scalar, ``true``/``false`` given a number). :func:`check_values`
walks the merged config against the dataclasses, recursively (``streams.*`` included),
and checks every value's type, finiteness, bounds, choices and pattern. Every mistake is
a :class:`ConfigError` whose message is one line, ``config error: KEY: ...``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from omegaconf import DictConfig, ListConfig, OmegaConf

from sharedsg.errors import UserError


class ConfigError(UserError, ValueError):
    """A user mistake in a configuration; the message is one line naming the key."""


def _field(default: Any, factory: Optional[Callable[[], Any]], metadata: Dict[str, Any]) -> Any:
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def choice(*choices: Any, default: Any = dataclasses.MISSING, factory: Optional[Callable[[], Any]] = None) -> Any:
    """A field taking one of ``choices`` (each element of a list field); default: the first choice."""
    if default is dataclasses.MISSING and factory is None:
        default = choices[0]
    return _field(default, factory, {"choices": tuple(choices)})


@dataclass(frozen=True)
class Bounds:
    """``ge``/``gt`` <= value <= ``le``/``lt``; the values in ``also`` are accepted besides."""

    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None
    also: Tuple[float, ...] = ()

    def admits(self, value: float) -> bool:
        if value in self.also:
            return True
        return not ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                    or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))

    def describe(self, integer: bool) -> str:
        """E.g. 'positive', 'non-negative', 'in [0, 1]', 'at least 2', '-1 or >= 0'."""
        low = (self.ge, "[", ">=") if self.ge is not None else (self.gt, "(", ">") if self.gt is not None else None
        high = (self.le, "]", "<=") if self.le is not None else (self.lt, ")", "<") if self.lt is not None else None
        if self.also:
            bound = " and ".join(f"{edge[2]} {_num(edge[0])}" for edge in (low, high) if edge is not None)
            return f"{' or '.join(_num(v) for v in self.also)} or {bound}"
        if low and high:
            return f"in {low[1]}{_num(low[0])}, {_num(high[0])}{high[1]}"
        if low:
            if low[0] == 0:
                return "non-negative" if low[2] == ">=" else "positive"
            if integer and low == (1, "[", ">="):
                return "positive"
            return f"at least {_num(low[0])}" if low[2] == ">=" else f"greater than {_num(low[0])}"
        assert high is not None
        return f"at most {_num(high[0])}" if high[2] == "<=" else f"less than {_num(high[0])}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def bounded(default: Any = dataclasses.MISSING, *, factory: Optional[Callable[[], Any]] = None,
            ge: Optional[float] = None, gt: Optional[float] = None, le: Optional[float] = None,
            lt: Optional[float] = None, also: Tuple[float, ...] = ()) -> Any:
    """A numeric field (or list of numbers) within bounds, e.g. ``bounded(0.5, ge=0, le=1)``."""
    return _field(default, factory, {"bounds": Bounds(ge, gt, le, lt, tuple(also))})


def matching(default: str, pattern: str, hint: str) -> Any:
    """A string field whose whole value matches ``pattern``; ``hint`` says in words what is accepted."""
    return _field(default, None, {"pattern": pattern, "hint": hint})


#: one path component: not empty, not '.' or '..', no '/', '\\' or NUL (so it cannot leave its parent folder)
FOLDER_NAME = r"(?!\.\.?$)[^/\\\x00]+"
FOLDER_NAME_HINT = "one folder name (not '.' or '..', no '/' or '\\'), e.g. my_run"


def is_folder_name(name: str) -> bool:
    """Whether ``name`` is one path component that stays inside its parent folder."""
    return re.fullmatch(FOLDER_NAME, name) is not None


def folder_name(default: str, *, optional: bool = False) -> Any:
    """A string field naming one folder (or file) under ``experiment.storage``; ``optional``: empty too."""
    return matching(default, f"(?:{FOLDER_NAME})?" if optional else FOLDER_NAME,
                    ("empty or " if optional else "") + FOLDER_NAME_HINT)


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"config error: {key}: {message}")


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _dict_value_type(tp: Any) -> Optional[Any]:
    """``V`` of ``Dict[str, V]``, else None."""
    return typing.get_args(tp)[1] if typing.get_origin(tp) in (dict, Dict) else None


def _list_item_type(tp: Any) -> Optional[Any]:
    return typing.get_args(tp)[0] if typing.get_origin(tp) in (list, typing.List) else None


def check_layer(layer: DictConfig, schema: type, prefix: str = "") -> None:
    """Mistakes in one raw (unmerged) layer that a merge would hide or report without the key:
    a section or mapping given a scalar or a list, a list given a scalar, a bool given a
    non-bool (OmegaConf would turn ``2`` into true). Unknown keys are left to the merge."""
    hints = typing.get_type_hints(schema)
    for name in layer:
        tp = hints.get(str(name))
        if tp is None or OmegaConf.is_interpolation(layer, str(name)):
            continue
        key, value = f"{prefix}{name}", layer[name]
        if value is None:
            continue  # the merge reports None where it is not allowed, with the key
        if _is_section(tp) or _dict_value_type(tp) is not None:
            if not isinstance(value, DictConfig):
                raise _fail(key, f"must be a mapping of settings, got {_show(value)}")
            if _is_section(tp):
                check_layer(value, tp, f"{key}.")
            elif _is_section(_dict_value_type(tp)):
                for item in value:
                    entry = value[item]
                    if not isinstance(entry, DictConfig):
                        raise _fail(f"{key}.{item}", f"must be a mapping of settings, got {_show(entry)}")
                    check_layer(entry, _dict_value_type(tp), f"{key}.{item}.")
        elif _list_item_type(tp) is not None:
            if not isinstance(value, ListConfig):
                raise _fail(key, f"must be a list, e.g. [{_show(value)}], got {_show(value)}")
        elif tp is bool and not isinstance(value, bool):
            raise _fail(key, f"must be true or false, got {_show(value)}")


def _show(value: Any) -> str:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    return repr(value) if isinstance(value, str) else str(value)


def _leaves(cfg: DictConfig, schema: type, prefix: str) -> Iterator[Tuple[str, Any, Any, Dict[str, Any]]]:
    """(key, value, declared type, field metadata) of every leaf value under ``cfg``."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        tp, key, value = hints[f.name], f"{prefix}{f.name}", cfg[f.name]
        if _is_section(tp):
            yield from _leaves(value, tp, f"{key}.")
        elif _is_section(_dict_value_type(tp)):
            for name in value:
                yield from _leaves(value[name], _dict_value_type(tp), f"{key}.{name}.")
        elif _dict_value_type(tp) is not None:
            for name in value:
                yield f"{key}.{name}", value[name], _dict_value_type(tp), dict(f.metadata)
        elif _list_item_type(tp) is not None:
            for i, item in enumerate(value):
                yield f"{key}[{i}]", item, _list_item_type(tp), dict(f.metadata)
        else:
            yield key, value, tp, dict(f.metadata)


def _check_leaf(key: str, value: Any, tp: Any, meta: Dict[str, Any]) -> None:
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (tp is int and not isinstance(value, int)):
            raise _fail(key, f"must be {'an integer' if tp is int else 'a number'}, got {_show(value)}")
        if not math.isfinite(value):
            raise _fail(key, f"must be a finite number, got {value}")
    elif tp is bool and not isinstance(value, bool):
        raise _fail(key, f"must be true or false, got {_show(value)}")
    elif tp is str and not isinstance(value, str):
        raise _fail(key, f"must be a string, got {_show(value)}")
    if "choices" in meta and value not in meta["choices"]:
        raise _fail(key.split("[")[0], f"'{value}' is not one of {', '.join(str(c) for c in meta['choices'])}")
    bounds: Optional[Bounds] = meta.get("bounds")
    if bounds is not None and not bounds.admits(value):
        raise _fail(key, f"must be {bounds.describe(tp is int)}, got {value}")
    if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        raise _fail(key, f"'{value}' must be {meta['hint']}")


def check_values(cfg: DictConfig, schema: type) -> None:
    """Type, finiteness, bounds, choice and pattern of every value of ``cfg`` (a merged ``schema``)."""
    for key, value, tp, meta in _leaves(cfg, schema, ""):
        _check_leaf(key, value, tp, meta)



def choices_of(schema: type, name: str) -> Tuple[Any, ...]:
    """The choices field ``name`` of ``schema`` declares (code that dispatches on a choice reads them here)."""
    return next(f for f in dataclasses.fields(schema) if f.name == name).metadata["choices"]
