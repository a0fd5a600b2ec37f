"""``attach``, ``status`` and ``stop`` of a running experiment, found by name on the cluster
(:func:`~sharedsg.runtime.service.registry.find_server`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import ray
from omegaconf import DictConfig, OmegaConf

from sharedsg.config import Config, ConfigError, read_yaml_mapping, validate
from sharedsg.configcheck import check_layer
from sharedsg.harness.loop import train_loop
from sharedsg.harness.runlog import RunLog
from sharedsg.runtime import NAMESPACE, stream_actor_name
from sharedsg.runtime.cluster import local_head
from sharedsg.runtime.cluster.connection import connect, disconnect
from sharedsg.runtime.hosting import placement
from sharedsg.runtime.hosting.actors import stop_actors
from sharedsg.runtime.hosting.backend import RayBackend
from sharedsg.runtime.service.registry import experiments, find_server
from sharedsg.runtime.sweep import job_actors


def attach_config(server_cfg: Dict[str, Any], stream_config: str, overrides: List[str]) -> DictConfig:
    """The experiment's config with its streams replaced by those of ``stream_config``."""
    p = Path(stream_config)
    user = read_yaml_mapping(p, "stream config", "pass a YAML file with a streams: section")
    check_layer(user, Config)
    base = dict(server_cfg)
    base.pop("streams", None)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value; write e.g. experiment.iterations=20")
    schema = OmegaConf.structured(Config)
    schema.streams = {}  # only the attached streams, not the default one
    try:
        cfg = OmegaConf.merge(schema, base, user, OmegaConf.from_dotlist(list(overrides)))
    except Exception as exc:
        raise ConfigError(f"config error: {(str(exc).strip().splitlines() or [''])[0]}") from None
    if "streams" not in user or not user.streams:
        raise ConfigError(f"stream config {p} has no streams: section, e.g. streams: {{cyclist2: {{data_class: cyclist}}}}")
    cfg.experiment.name = server_cfg["experiment"]["name"]
    validate(cfg)
    return cfg


def attach(experiment: str, stream_config: str, overrides: List[str],
           address: Optional[str] = None) -> Dict[str, Any]:
    """Register the streams of ``stream_config`` with a running experiment and train them (the
    same train loop as ``sharedsg run``); their TensorBoard logs go into the experiment's run directory."""
    connect(address, embedded_ok=False)
    server = find_server(experiment)
    server_cfg = ray.get(server.config.remote(), timeout=60)
    run_path = ray.get(server.state.remote(), timeout=60)["run_path"]
    cfg = attach_config(server_cfg, stream_config, overrides)
    log = RunLog(run_path)
    backend = RayBackend(cfg, log, server, owns_server=False)
    started = time.perf_counter()
    try:
        history = train_loop(cfg, backend, log)
        groups = backend.groups_of()
    finally:
        backend.close()
        log.close()
    return {"experiment": experiment, "run_path": run_path, "wall_time_s": time.perf_counter() - started,
            "streams": {n: {"steps": len(h["updates"]), "loss/eval": h["loss/eval"][-1] if h["loss/eval"] else None,
                            "group": groups[n]} for n, h in history.items()}}


def status(experiment: Optional[str] = None, address: Optional[str] = None) -> Dict[str, Any]:
    connect(address, embedded_ok=False)
    names = [experiment] if experiment else experiments()
    out: Dict[str, Any] = {}
    for name in names:
        server = find_server(name)
        try:
            out[name] = ray.get(server.state.remote(), timeout=30)
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError) as exc:
            out[name] = {"error": type(exc).__name__}
    return out


def stop(experiment: str, address: Optional[str] = None) -> Dict[str, Any]:
    """Checkpoint and stop the experiment's SG service (its groups, then the registry) and any of
    its stream actors still alive."""
    connect(address, embedded_ok=False)
    server = find_server(experiment)
    path = None
    try:
        path = ray.get(server.stop.remote(), timeout=60)
    except ray.exceptions.RayError:
        pass
    stop_actors([server])
    placement.release_detached(experiment)  # the attachable server's bundles
    killed, streams = [], []
    prefix = stream_actor_name(experiment, "")
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a.get("namespace") == NAMESPACE and a["name"].startswith(prefix):
            try:
                streams.append(ray.get_actor(a["name"], namespace=NAMESPACE))
                killed.append(a["name"])
            except ValueError:
                pass
    stop_actors(streams)
    out = {"experiment": experiment, "stopped": True, "checkpoint": path, "streams_stopped": killed}
    out.update(stop_idle_local_head(stopped=experiment))
    return out


def stop_idle_local_head(stopped: str) -> Dict[str, Any]:
    """Stop the local Ray of attachable experiments (:mod:`.local_head`) once it runs none but
    ``stopped`` (whose name may take a moment to go); what was stopped."""
    head = local_head.running()
    port = str(head["address"]).rsplit(":", 1)[1] if head is not None else None
    if port is None or ray.get_runtime_context().gcs_address.rsplit(":", 1)[1] != port:
        return {}
    if [e for e in experiments() if e != stopped] or job_actors():
        return {}
    disconnect()
    return {"local_ray_stopped": local_head.stop()}

