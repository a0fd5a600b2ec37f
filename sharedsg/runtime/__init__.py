"""The distributed runtime: the only package of sharedsg that imports ray. It wraps the ray-free
harness (:mod:`sharedsg.harness`) and never imports :mod:`sharedsg.experiments`.

Folders by what they do (docs/design.md, "Layers"):

- :mod:`.service`: the SG service: ``SGRegistry``, the experiment's named service
  (``sgserver:<experiment>``); ``SGGroupServer``, one actor per SG group (ingest apart from
  learning); ``SGClient``, a stream's side of the protocol; ``RayEndpoint``, the harness's
  ``SGEndpoint`` over it; checkpoints; ``join`` / ``Service`` for the public API;
- :mod:`.hosting`: stream hosting: ``StreamActor`` (one NMN stream, the ray-free
  :class:`~sharedsg.harness.stream.Stream`), ``RayBackend`` (the harness's
  :class:`~sharedsg.harness.backend.Backend` on Ray), placement, stopping actors;
- :mod:`.cluster`: connecting to (or starting) Ray once, the local Ray of attachable experiments,
  launching a run, ``attach`` / ``status`` / ``stop``;
- :mod:`.sweep`: jobs (Omniglot, MNIST, meta-test) as named, resumable job actors with progress.

This module holds the names the folders share (actor names, namespace) and the config helpers.
"""

import json
from typing import Any, Dict, Iterable, Optional, Tuple

from omegaconf import DictConfig

NAMESPACE = "sharedsg"
SERVER_PREFIX = "sgserver:"
STREAM_PREFIX = "stream:"
GROUP_PREFIX = "sggroup:"
RESET_PREFIX = "reset:"  # keys of the resets' notes in Ray's key-value store (namespace ``sharedsg``)


def server_name(experiment: str) -> str:
    return f"{SERVER_PREFIX}{experiment}"


def group_actor_name(experiment: str, group: str) -> str:
    return f"{GROUP_PREFIX}{experiment}:{group}"


def stream_actor_name(experiment: str, stream: str) -> str:
    return f"{STREAM_PREFIX}{experiment}:{stream}"


def was_reconstructed() -> bool:
    """Inside an actor: whether Ray restarted it (its constructor runs again after a crash)."""
    import warnings

    import ray

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)


def record_reset(old_run_path: str, cfg: Dict[str, Any], run_path: str) -> None:
    """Note that the actors started for ``old_run_path`` now serve ``cfg`` in ``run_path`` (a reset,
    ``RayBackend.reset``), in the cluster's key-value store (Ray's internal one, which Ray's own
    libraries use): Ray restarts a crashed actor with the arguments it was first created with, and
    :func:`current_args` follows these notes from them."""
    from ray.experimental import internal_kv

    note = json.dumps({"cfg": cfg, "run_path": str(run_path)})
    internal_kv._internal_kv_put(RESET_PREFIX + str(old_run_path), note, namespace=NAMESPACE)


def forget_resets(old_run_paths: Iterable[str]) -> None:
    """Remove the notes of :func:`record_reset` for these run paths (the run has ended)."""
    from ray.experimental import internal_kv

    for path in old_run_paths:
        internal_kv._internal_kv_del(RESET_PREFIX + str(path), namespace=NAMESPACE)


def current_args(cfg: Dict[str, Any], run_path: str) -> Tuple[Dict[str, Any], str]:
    """Inside an actor's constructor: the config and run path it serves now. Those it was created
    with, unless resets moved it on since (:func:`record_reset`); then the newest."""
    from ray.experimental import internal_kv

    seen = {str(run_path)}
    while (note := internal_kv._internal_kv_get(RESET_PREFIX + str(run_path), namespace=NAMESPACE)) is not None:
        moved = json.loads(note)
        cfg, run_path = moved["cfg"], moved["run_path"]
        if run_path in seen:
            break
        seen.add(run_path)
    return cfg, str(run_path)


def with_defaults(plain):
    """A config sent over the wire as a plain dict, merged onto this process's defaults (so a
    worker whose code knows a field the driver's does not still gets its default)."""
    from omegaconf import OmegaConf

    from sharedsg.config import Config

    schema = OmegaConf.structured(Config)
    schema.streams = {}
    return OmegaConf.merge(schema, plain)


def system_config(cfg: Optional[DictConfig] = None) -> Dict[str, int]:
    """Ray's system config for a Ray that sharedsg starts: task arguments and returns up to
    ``resources.inline_object_kb`` (a stream's push, a group's SG weights) are sent inline from
    process to process; through the object store (Ray's default above 100 KB) each costs the
    raylet and both ends a store round trip (docs/runtime.md, "Wire": the raylet's CPU per demo
    iteration 15 -> 3 ms)."""
    from sharedsg.config import ResourcesConfig

    kb = int(cfg.resources.inline_object_kb) if cfg is not None else ResourcesConfig().inline_object_kb
    return {"max_direct_call_object_size": kb * 1024}
