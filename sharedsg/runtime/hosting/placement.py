"""Where a run's actors go: one Ray placement group for its SG server groups and its streams.

A run asks Ray once for everything it needs (one bundle per SG group for the server, one per
stream): all or nothing, and one request the autoscaler sees and can scale for. If the
reservation is not granted within ``resources.placement_timeout_s`` the run stops with one
line naming what it asked for, what the cluster has and the setting to change, and the
placement group is removed (nothing stays reserved, no actor was started). Every actor of the
run is then started inside its bundle with :meth:`Reservation.stream_options` /
:meth:`Reservation.server_options`.

GPUs per stream (``resources.gpus_per_stream``, a string so that one field holds both forms):

- a number (``"0"``, ``"0.25"``, ``"1"``, ``"2"``): that many GPUs for each stream; a fraction
  packs several streams on one GPU (``0.25``: four);
- ``auto``: the streams share the GPUs there are (``resources.max_gpus``: ``-1`` counts the GPUs
  of the nodes up now; ``N`` counts N, which an autoscaling cluster has to start), ``1/k`` of a
  GPU each with the smallest ``k`` that fits every stream (a ``1/k`` share packs exactly k to a
  GPU, so the request always fits those GPUs), never more than one; no GPU: CPU only.

An attachable run's server outlives its driver, so its bundles are a detached placement group
of their own (named :func:`server_group_name`, removed by ``sharedsg stop``); the streams'
bundles are a second group of the driver. Both are asked for at once and waited for together,
with the same deadline, and both are removed when either is not granted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import ray
from omegaconf import DictConfig
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from sharedsg.errors import UserError
from sharedsg.harness.stream import group_of

GPU_QUANTUM = 1e-4  # Ray's resolution for fractional resources
PG_PREFIX = "sharedsg-servers:"


def server_group_name(experiment: str) -> str:
    """The detached placement group of an attachable experiment's server."""
    return f"{PG_PREFIX}{experiment}"


def parse_gpus(value: Any) -> Optional[float]:
    """``resources.gpus_per_stream`` as a number, None for ``auto``; a ValueError names the forms."""
    text = str(value).strip().lower()
    if text == "auto":
        return None
    try:
        g = float(text)
    except ValueError:
        raise ValueError(f"'{value}' is not auto or a number of GPUs (e.g. 0.25, 1)") from None
    if g < 0 or not math.isfinite(g):
        raise ValueError(f"'{value}' must be auto or a number >= 0")
    return g


def whole_gpus(nodes: Sequence[float]) -> int:
    """GPUs that whole-GPU shares can use: per node, its GPU count rounded down."""
    return int(sum(math.floor(g + 1e-9) for g in nodes))


def auto_share(streams: int, gpus: int) -> float:
    """``1/k`` of a GPU per stream, the smallest k with ``k * gpus >= streams`` (0 without GPUs)."""
    if gpus <= 0 or streams <= 0:
        return 0.0
    k = math.ceil(streams / gpus)
    return math.floor(1.0 / k / GPU_QUANTUM) * GPU_QUANTUM


def node_gpus() -> List[float]:
    """The GPUs of each node of the cluster that is up now."""
    return [float(n.get("Resources", {}).get("GPU", 0.0)) for n in ray.nodes() if n.get("Alive")]


def stream_gpus(cfg: DictConfig, streams: int, groups: int) -> float:
    """GPUs for each of ``streams`` streams (``resources.gpus_per_stream``, ``auto`` resolved)."""
    fixed = parse_gpus(cfg.resources.gpus_per_stream)
    if fixed is not None:
        return fixed
    r = cfg.resources
    total = int(r.max_gpus) if int(r.max_gpus) >= 0 else whole_gpus(node_gpus())
    total = int(math.floor(total - groups * float(r.server_gpus) + 1e-9))
    return auto_share(streams, total)


def _bundle(cpus: float, gpus: float) -> Dict[str, float]:
    return {k: v for k, v in (("CPU", float(cpus)), ("GPU", float(gpus))) if v > 0}


def _fmt(res: Dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(res.items())) + "}" if res else "{}"


def _total(bundles: Sequence[Dict[str, float]]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            out[k] = out.get(k, 0.0) + v
    return out


@dataclass
class Reservation:
    """The bundles of a run (or of an attach's streams) and the options that put actors into them."""

    stream_bundles: Dict[str, Dict[str, float]]
    server_bundles: Dict[str, Dict[str, float]]
    gpus_per_stream: float
    _pgs: Dict[str, PlacementGroup] = field(default_factory=dict)  # "streams" / "servers" -> its group
    _index: Dict[str, tuple] = field(default_factory=dict)  # actor key -> (pg key, bundle index)

    # -- actor options ---------------------------------------------------------------------
    def stream_options(self, name: str) -> Dict[str, Any]:
        """``num_cpus``/``num_gpus``/``scheduling_strategy`` for stream ``name``'s actor."""
        return self._options(f"stream:{name}", self.stream_bundles[name])

    def server_options(self, group: str) -> Dict[str, Any]:
        """``num_cpus``/``num_gpus``/``scheduling_strategy`` for the server actor of SG group ``group``."""
        return self._options(f"server:{group}", self.server_bundles[group])

    def _options(self, key: str, bundle: Dict[str, float]) -> Dict[str, Any]:
        out: Dict[str, Any] = {"num_cpus": bundle.get("CPU", 0.0), "num_gpus": bundle.get("GPU", 0.0)}
        if key in self._index:
            pg_key, index = self._index[key]
            out["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self._pgs[pg_key], placement_group_bundle_index=index,
                placement_group_capture_child_tasks=False)
        return out

    def has_stream(self, name: str) -> bool:
        return name in self.stream_bundles

    # -- reserve and release ---------------------------------------------------------------
    def reserve(self, timeout_s: float, *, detached_servers: Optional[str] = None) -> "Reservation":
        """Ask Ray for every bundle at once and wait until all are granted, or fail with one line."""
        parts = {"streams": [(f"stream:{n}", b) for n, b in self.stream_bundles.items() if b],
                 "servers": [(f"server:{g}", b) for g, b in self.server_bundles.items() if b]}
        if detached_servers is None:  # one group for everything
            parts = {"run": parts["streams"] + parts["servers"]}
        for key, items in parts.items():
            if not items:
                continue
            kw: Dict[str, Any] = {}
            if key == "servers":
                kw = dict(name=detached_servers, lifetime="detached")
            self._pgs[key] = placement_group([b for _, b in items], strategy="PACK", **kw)
            for i, (actor_key, _) in enumerate(items):
                self._index[actor_key] = (key, i)
        if not self._pgs:
            return self
        refs = [pg.ready() for pg in self._pgs.values()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=max(0.0, float(timeout_s)))
        if len(ready) < len(refs):
            message = self.refusal(timeout_s)
            self.release(servers=True)
            raise UserError(message)
        return self

    def release(self, servers: bool = True) -> None:
        """Remove the placement groups (the streams' only, unless ``servers``); their actors die with them."""
        for key in list(self._pgs):
            if key == "servers" and not servers:
                continue
            try:
                remove_placement_group(self._pgs.pop(key))
            except Exception:  # already removed, or Ray is gone
                pass

    def refusal(self, timeout_s: float) -> str:
        """The one line of a reservation that was not granted: asked for, the cluster has, what to change."""
        bundles = [b for b in self.stream_bundles.values()] + [b for b in self.server_bundles.values()]
        asked = _total(bundles)
        stream_b = next(iter(self.stream_bundles.values()), {})
        server_b = next(iter(self.server_bundles.values()), {})
        has = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        free = {k: v for k, v in ray.available_resources().items() if k in ("CPU", "GPU")}
        nodes = ", ".join(f"{g:g}" for g in node_gpus())
        what = f"{len(self.stream_bundles)} streams x {_fmt(stream_b)}"
        if self.server_bundles:
            what += f" + {len(self.server_bundles)} SG server groups x {_fmt(server_b)}"
        fix = ("lower resources.gpus_per_stream (auto shares the GPUs there are, 0.25 packs four streams "
               "on a GPU)" if asked.get("GPU", 0) > has.get("GPU", 0) else
               "lower resources.cpus_per_stream / resources.server_cpus or resources.server_gpus")
        return (f"placement: not granted within {timeout_s:g} s (resources.placement_timeout_s): asked for {what} "
                f"= {_fmt(asked)}; the cluster has {_fmt(has)} ({_fmt(free)} free; GPUs per node: {nodes or 'none'}); "
                f"{fix}, or add nodes")


def plan(cfg: DictConfig, streams: Sequence[str], groups: Sequence[str]) -> Reservation:
    """The bundles for ``streams`` and the server of ``groups`` (not reserved yet)."""
    r = cfg.resources
    g = stream_gpus(cfg, len(streams), len(groups))
    return Reservation(
        stream_bundles={n: _bundle(float(r.cpus_per_stream), g) for n in streams},
        server_bundles={grp: _bundle(float(r.server_cpus), float(r.server_gpus)) for grp in groups},
        gpus_per_stream=g)


def reserve_run(cfg: DictConfig) -> Reservation:
    """Reserve a run's server (one bundle per SG group of its streams) and streams, or fail with one line."""
    streams = list(cfg.streams)
    groups = sorted({group_of(cfg, n) for n in streams})
    detached = server_group_name(cfg.experiment.name) if cfg.experiment.attachable else None
    if detached is not None:
        release_detached(cfg.experiment.name)  # a stopped experiment's leftover, if any
    return plan(cfg, streams, groups).reserve(float(cfg.resources.placement_timeout_s), detached_servers=detached)


def reserve_streams(cfg: DictConfig, streams: Sequence[str]) -> Reservation:
    """Reserve streams that join a running server (attach, or a stream added later)."""
    return plan(cfg, list(streams), []).reserve(float(cfg.resources.placement_timeout_s))


def release_detached(experiment: str) -> bool:
    """Remove an attachable experiment's detached server placement group (``sharedsg stop``)."""
    try:
        pg = ray.util.get_placement_group(server_group_name(experiment))
    except ValueError:
        return False
    try:
        remove_placement_group(pg)
    except Exception:
        return False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # removal is asynchronous; its name frees once it is gone
        try:
            ray.util.get_placement_group(server_group_name(experiment))
        except ValueError:
            return True
        time.sleep(0.1)
    return True


__all__ = ["Reservation", "auto_share", "parse_gpus", "plan", "release_detached", "reserve_run",
           "reserve_streams", "server_group_name", "stream_gpus", "whole_gpus"]
