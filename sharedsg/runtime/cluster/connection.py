"""Connecting to (or starting) Ray, once per process.

- No ``--address`` and no ``RAY_ADDRESS``: start a Ray inside this command (the embedded
  default: no dashboard, a small object store, enough logical CPUs for the streams and server);
  for an attachable experiment, start or join the local Ray that outlives the command
  (:mod:`~sharedsg.runtime.cluster.local_head`), which ``attach``, ``status`` and ``stop`` then find.
- Otherwise join that cluster (``host:port``, ``auto`` or ``ray://...``).

A second :func:`connect` in the same process is a no-op (``ray.is_initialized()``).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Optional

import ray
from omegaconf import DictConfig

from sharedsg.errors import UserError
from sharedsg.harness.stream import group_of
from sharedsg.runtime import NAMESPACE, system_config
from sharedsg.runtime.cluster import local_head

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

