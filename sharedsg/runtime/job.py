"""Launch, attach, status and stop: connecting to (or starting) Ray and finding experiments.

- No ``--address`` and no ``RAY_ADDRESS``: start a Ray inside this command (the embedded
  default: no dashboard, a small object store, enough logical CPUs for the streams and server);
  for an attachable experiment, start or join the local Ray that outlives the command
  (:mod:`~sharedsg.runtime.local_head`), which ``attach``, ``status`` and ``stop`` then find.
- Otherwise join that cluster (``host:port``, ``auto`` or ``ray://...``).

Experiments are found by name: the server is ``sgserver:<experiment>`` in namespace ``sharedsg``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import ray
from omegaconf import DictConfig, OmegaConf

from sharedsg.config import Config, ConfigError, read_yaml_mapping, validate
from sharedsg.configcheck import check_layer
from sharedsg.errors import UserError
from sharedsg.harness.launcher import Launcher
from sharedsg.harness.loop import train_loop
from sharedsg.harness.runlog import RunLog
from sharedsg.harness.stream import group_of
from sharedsg.runtime import (NAMESPACE, SERVER_PREFIX, local_head, placement, server_name, stream_actor_name,
                              system_config)
from sharedsg.runtime.actors import stop_actors
from sharedsg.runtime.backend import RayBackend
from sharedsg.runtime.registry import registry_actor

_STARTED_HERE = False


def _reachable(address: str, timeout: float = 3.0) -> Optional[str]:
    """None when ``host:port`` accepts a TCP connection, else why not."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"'{address}' is not host:port"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _cpus_for(cfg: Optional[DictConfig], num_cpus: Optional[int]) -> int:
    """Logical CPUs of a Ray started here: ``num_cpus``, else enough for ``cfg``'s streams and
    server groups (at least the machine's cores)."""
    need = 1.0
    if cfg is not None:
        groups = {group_of(cfg, n) for n in cfg.streams}
        need = len(cfg.streams) * float(cfg.resources.cpus_per_stream) + len(groups) * float(cfg.resources.server_cpus)
    return num_cpus if num_cpus is not None else max(int(os.cpu_count() or 1), int(need + 0.999))


def connect(address: Optional[str] = None, cfg: Optional[DictConfig] = None, *, embedded_ok: bool = True,
            num_cpus: Optional[int] = None) -> str:
    """Join the cluster at ``address`` (else ``$RAY_ADDRESS``), or start an embedded Ray; returns where.

    Without an address, an attachable ``cfg`` starts or joins the local Ray that outlives this
    command; ``embedded_ok=False`` (attach, status, stop) joins that local Ray when it runs."""
    global _STARTED_HERE
    if ray.is_initialized():
        return "connected"
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = dict(logging_level=logging.WARNING, log_to_driver=True, namespace=NAMESPACE)
    head = None
    if address is None and cfg is not None and cfg.experiment.attachable:
        head = local_head.start(_cpus_for(cfg, num_cpus), int(cfg.resources.object_store_mb), system_config(cfg))
    elif address is None and not embedded_ok:
        head = local_head.running()
        if head is None:
            raise UserError("no Ray cluster given: pass --address HOST:PORT (or set RAY_ADDRESS) to reach the "
                            "cluster that runs the experiment; on one machine, `sharedsg run CONFIG "
                            "experiment.attachable=true` starts a local Ray that these commands find")
    if head is not None:
        local_head.use_token(head)
        address = str(head["address"])
    if address is None:
        mb = int(cfg.resources.object_store_mb) if cfg is not None else 200
        cpus = _cpus_for(cfg, num_cpus)
        token_auth_for_embedded_ray()
        # "local": a Ray of its own even when another runs on this machine (which a bare
        # ray.init() would join, and refuse num_cpus for)
        ray.init(address="local", include_dashboard=False, object_store_memory=mb * 1024 * 1024, num_cpus=cpus,
                 _system_config=system_config(cfg), **quiet)
        _STARTED_HERE = True
        return "embedded"
    if not address.startswith("ray://") and address != "auto":
        why = _reachable(address)
        if why is not None:
            raise UserError(f"no Ray cluster at {address} ({why}); start one with `ray start --head` "
                            f"or leave out --address to run on an embedded Ray")
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot join the Ray cluster at {address}: {first}") from None
    return address


def token_auth_for_embedded_ray() -> None:
    """Token authentication for the Ray that ``connect`` starts inside the command, set explicitly.

    Ray (2.60) turns token authentication on by default for a Ray that ``ray.init`` starts and
    then warns at every start ("Token authentication is enabled for this Ray cluster. Set
    RAY_AUTH_MODE=disabled to opt out"). The embedded Ray is local-only (this command's own
    processes use it), but its ports are open to every user of the machine, so sharedsg keeps
    Ray's default, token on (the token is Ray's ``~/.ray/auth_token``, generated once), and says
    so by setting ``RAY_AUTH_MODE=token`` itself, which Ray takes without a warning; the workers
    inherit it. A ``RAY_AUTH_MODE`` the user set is left as it is. Ray reads the mode when it is
    imported, so its config is refreshed (what Ray's own default does after setting it)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    from ray._raylet import Config

    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")


def disconnect() -> None:
    global _STARTED_HERE
    if ray.is_initialized():
        ray.shutdown()
    _STARTED_HERE = False


def job_actors() -> List[str]:
    """Names of the sweep job actors alive on the connected cluster."""
    from sharedsg.runtime.sweep import JOB_PREFIX

    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a.get("namespace") == NAMESPACE and a["name"].startswith(JOB_PREFIX)]


def experiments() -> List[str]:
    """Names of the experiments whose server runs on the connected cluster."""
    names = ray.util.list_named_actors(all_namespaces=True)
    return sorted(a["name"][len(SERVER_PREFIX):] for a in names
                  if a.get("namespace") == NAMESPACE and a["name"].startswith(SERVER_PREFIX))


def find_server(experiment: str):
    try:
        return ray.get_actor(server_name(experiment), namespace=NAMESPACE)
    except ValueError:
        running = experiments()
        listed = ", ".join(running) if running else "none"
        raise UserError(f"no experiment '{experiment}' in Ray namespace '{NAMESPACE}' "
                        f"(actor '{server_name(experiment)}'); experiments running there: {listed}") from None


def _driver_node() -> Optional[str]:
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:
        return None


def ray_backend(cfg: DictConfig, log: RunLog, address: Optional[str] = None) -> RayBackend:
    """The backend of ``sharedsg run`` without ``--local``: a new server plus one actor per stream."""
    connect(address, cfg)
    try:
        existing = ray.get_actor(server_name(cfg.experiment.name), namespace=NAMESPACE)
    except ValueError:
        existing = None
    if existing is not None:
        run = ray.get(existing.state.remote(), timeout=30)["run_path"]
        raise UserError(f"experiment '{cfg.experiment.name}' is already running in namespace '{NAMESPACE}' "
                        f"(run {run}); attach streams with `sharedsg attach --experiment {cfg.experiment.name}` "
                        f"or stop it with `sharedsg stop --experiment {cfg.experiment.name}`")
    # everything the run needs, all or nothing, before any actor starts or anything is written
    reservation = placement.reserve_run(cfg)
    try:
        server = registry_actor(cfg, log.location, detached=bool(cfg.experiment.attachable), node_id=_driver_node())
        # each SG group's actor goes into its own bundle of the reservation
        ray.get([server.place.remote(g, reservation.server_options(g)) for g in reservation.server_bundles])
    except BaseException:
        reservation.release(servers=True)
        raise
    log.config("server", cfg)
    return RayBackend(cfg, log, server, owns_server=True, reservation=reservation)


# -- attach ------------------------------------------------------------------------------------
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


# -- status and stop ---------------------------------------------------------------------------
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


def format_status(states: Dict[str, Any]) -> str:
    if not states:
        return f"no experiments running in Ray namespace '{NAMESPACE}'"

    def ms(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}ms"

    lines = []
    for name, s in states.items():
        if "error" in s:
            lines.append(f"{name}: unreachable ({s['error']})")
            continue
        lines.append(f"{name}: run {s['run_path']}  transport={s['transport']} policy={s.get('policy', '?')}  "
                     f"pushes={s['pushes']} updates={s.get('updates', '?')} queue={s['queue']} "
                     f"duplicates={s.get('duplicates', 0)} lost={s['lost_pushes']} overflow={s.get('overflow', 0)} "
                     f"restarts={s['restarts']}")
        for g, info in sorted(s["groups"].items()):
            if "error" in info:
                lines.append(f"  group {g}: unreachable ({info['error']})  streams: {', '.join(info['streams']) or '-'}")
                continue
            lines.append(f"  group {g}: v{info['version']}  actor={info['actor']} node={info['node']} "
                         f"device={info['device']}  ingest={info['ingest_per_s']:.1f}/s "
                         f"updates={info['updates_per_s']:.1f}/s buffer={info['queued']}/{info['buffer_size']} "
                         f"pull p50/p99={ms(info['pull_p50_ms'])}/{ms(info['pull_p99_ms'])}  "
                         f"streams: {', '.join(info['streams']) or '-'}")
        for sn, st in sorted(s["streams"].items()):
            lines.append(f"  stream {sn}: group={st['group']} pushes={st['pushes']} last_seq={st['last_seq']} "
                         f"duplicates={st.get('duplicates', 0)} lost={st.get('lost', 0)} "
                         f"resumed_from_server={st.get('resumed_from_server', 0)} lag={st.get('lag', 0):.1f} "
                         f"node={st.get('node', '?')} device={st.get('device', '?')}")
    return "\n".join(lines)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


# -- launcher for experiments ------------------------------------------------------------------
def ray_launcher(address: Optional[str] = None, cfg: Optional[DictConfig] = None) -> Launcher:
    """Streams as actors (an embedded Ray sized for the first backend's streams), jobs as named job
    actors (``sharedsg status`` lists them) with ``cfg``'s ``resources.cpus_per_stream`` CPUs and
    ``resources.gpus_per_job`` GPUs each."""
    from sharedsg.runtime.sweep import map_jobs

    cpus = float(cfg.resources.cpus_per_stream) if cfg is not None else 1.0
    gpus = float(cfg.resources.gpus_per_job) if cfg is not None else 0.0
    require_cuda = bool(cfg.resources.require_cuda) if cfg is not None else True

    def backend(cfg: DictConfig, log: RunLog) -> RayBackend:
        connect(address, cfg)
        return ray_backend(cfg, log, address=address)

    def job_map(fn, args_list):
        connect(address, cfg)
        sweep = f"{cfg.experiment.name}/{cfg.experiment.run_name}" if cfg is not None else "jobs"
        every = float(cfg.experiment.progress_every_s) if cfg is not None else 30.0
        return map_jobs(fn, [tuple(a) for a in args_list], sweep=sweep, cpus=cpus, gpus=gpus,
                        require_cuda=require_cuda, progress_every_s=every,
                        log=lambda m: print(m, file=sys.stderr, flush=True))

    return Launcher(backend=backend, map=job_map)
