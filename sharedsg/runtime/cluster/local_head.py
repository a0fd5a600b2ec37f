"""A Ray head on this machine that outlives the command: attachable experiments without a cluster.

``sharedsg run CONFIG experiment.attachable=true`` without ``--address`` (and without
``RAY_ADDRESS``) starts one (``ray start --head --block`` in its own process session, no
dashboard) or joins the one already started; ``sharedsg attach | status | stop`` without an
address find it through a small state file in the cache folder (``$SHAREDSG_CACHE``, else
``~/.cache/sharedsg``): ``local-ray.json`` with its address, process id and token (readable by
this user only). Token authentication is on, as on the clusters: the head and every client of
it get ``RAY_AUTH_MODE=token`` and its ``RAY_AUTH_TOKEN`` (:func:`use_token`). ``sharedsg stop``
of its last experiment stops it (the process group this module started, never another Ray of
the machine), so nothing is left running.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional

from sharedsg.config import cache_dir
from sharedsg.errors import UserError

STATE = "local-ray.json"
START_TIMEOUT_S = 120.0


def state_file() -> Path:
    return cache_dir() / STATE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def running() -> Optional[Dict[str, object]]:
    """``{"address", "pid", "log"}`` of the local head when it is up, else None (a stale file is removed)."""
    path = state_file()
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if _alive(int(state["pid"])) and _listening(str(state["address"])):
        return state
    path.unlink(missing_ok=True)
    return None


def use_token(state: Dict[str, object]) -> None:
    """Let this process's Ray client authenticate to the local head (call before ``ray.init``).

    Ray reads ``RAY_AUTH_MODE`` and the token once, when it is imported; setting them later also
    needs its config and token cache refreshed (what Ray's own ``ray.init`` does after it
    generates a token)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = str(state["token"])
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(num_cpus: int, object_store_mb: int, system_config: Dict[str, object]) -> Dict[str, object]:
    """Join the local head, or start it with Ray's ``system_config``; its state (and a line on stderr
    saying how it stops)."""
    state = running()
    if state is not None:
        return state
    port = _free_port()
    token = secrets.token_hex(32)
    log = cache_dir() / "local-ray.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # ports of its own: another Ray on this machine may hold the default ones
    ports = [f"--{name}-port={_free_port()}" for name in ("dashboard-agent-listen", "dashboard-agent-grpc",
                                                            "runtime-env-agent", "metrics-export", "ray-client-server")]
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
               "--node-ip-address=127.0.0.1", "--include-dashboard=false", f"--num-cpus={num_cpus}",
               f"--object-store-memory={object_store_mb * 1024 * 1024}", "--disable-usage-stats",
               f"--system-config={json.dumps(system_config)}", *ports]
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token),
                                start_new_session=True)  # not in this command's process group: outlives it
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _listening(address):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_pid(proc.pid)
            raise UserError(f"could not start a local Ray for the attachable experiment (see {log})")
        time.sleep(0.5)
    state = {"address": address, "pid": proc.pid, "log": str(log), "token": token}
    path = state_file()
    path.touch(mode=0o600)
    path.write_text(json.dumps(state))
    print(f"sharedsg: started a local Ray at {address} (pid {proc.pid}) that outlives this command; "
          f"`sharedsg attach|status|stop` find it; `sharedsg stop --experiment NAME` of its last "
          f"experiment stops it", file=sys.stderr, flush=True)
    return state


def stop_pid(pid: int, timeout: float = 60.0) -> None:
    """Stop a head this module started: SIGTERM to ``ray start --block``, which stops its Ray
    processes in order; whatever of its process group is left after ``timeout`` is killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        try:  # our child when this process started it: reap it
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL if _alive(pid) else signal.SIGTERM)  # stragglers of its group
    except OSError:
        pass


def stop() -> Optional[str]:
    """Stop the local head; its address, or None when none was running."""
    state = running()
    if state is None:
        return None
    stop_pid(int(state["pid"]))
    state_file().unlink(missing_ok=True)
    return str(state["address"])
