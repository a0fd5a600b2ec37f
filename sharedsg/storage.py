"""``experiment.storage``: the one place where every node of a run writes (no Ray here).

TensorBoard events, checkpoints (streams, SG server, sweep jobs), figures and ``results.json``
all go under one location, so a stream restarted on another node restores from where its
previous incarnation wrote, and nothing lands in a node's temporary folders:

- a local path, or a shared filesystem mounted at the same path on every node (NFS, EFS, a
  Kubernetes volume): written directly, atomically (temporary file + ``os.replace``);
- a URI (``s3://bucket/runs``, ``gs://bucket/runs``, ``file:///mnt/runs``), written through
  ``pyarrow.fs`` as Ray Train's ``storage_path`` is (pyarrow is optional: without it a URI is a
  one-line error). Checkpoints go to the URI directly; the driver writes its TensorBoard
  events, figures and ``results.json`` into a local staging folder (:func:`staging_dir`) and
  uploads what changed in it on every flush (:func:`upload_dir`).

A relative path is resolved once, on the driver (:func:`resolve_root`): against the current
directory, except inside a ``ray job submit --working-dir`` package (Ray deletes it with the
session), where it is resolved against the home directory instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

from sharedsg.errors import UserError

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_MANGLED = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/(?!/)")  # pathlib made "s3://b/x" into "s3:/b/x"


def is_uri(location: str | os.PathLike) -> bool:
    return bool(_URI.match(str(location)))


def location(value: str | os.PathLike) -> str:
    """A storage location as a string; a URI that went through ``pathlib.Path`` (which merges the
    ``//`` after the scheme, as the job classes' ``Path(directory) / "checkpoint.pt"`` does) is
    restored."""
    text = str(value)
    if not is_uri(text) and _MANGLED.match(text) and not os.path.exists(text.split("/", 1)[0]):
        return _MANGLED.sub(lambda m: f"{m.group(1)}://", text, count=1)
    return text


def join(root: str | os.PathLike, *parts: str) -> str:
    """``root/part/...`` for a path or a URI."""
    out = location(root)
    for p in parts:
        out = out.rstrip("/") + "/" + str(p).strip("/")
    return out


def in_ray_session_dir(path: Path) -> bool:
    """Whether ``path`` lies in what Ray deletes with its session: a job's ``--working-dir``
    package (``.../runtime_resources/.../_ray_pkg_...``) or Ray's temporary folder."""
    parts = path.parts
    if any(p == "runtime_resources" or p.startswith("_ray_pkg_") for p in parts):
        return True
    ray_tmp = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray"
    return path == ray_tmp or ray_tmp in path.parents


def resolve_root(value: str, cwd: Optional[Path] = None, home: Optional[Path] = None) -> str:
    """``experiment.storage`` made absolute on the driver (URIs unchanged, ``~`` expanded)."""
    value = str(value).strip() or "runs"
    if is_uri(value):
        return value.rstrip("/")
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    base = Path(cwd) if cwd is not None else Path.cwd()
    if in_ray_session_dir(base):  # `ray job submit --working-dir`: not under the package Ray deletes
        base = Path(home) if home is not None else Path.home()
    return str((base / p).resolve())


# -- pyarrow for URIs ----------------------------------------------------------------------------
def _arrow(loc: str) -> Tuple[object, str]:
    try:
        from pyarrow import fs as pafs
    except ImportError:
        raise UserError(f"experiment.storage: {loc} is a URI, which needs pyarrow (pip install pyarrow); "
                        f"or give a local or shared filesystem path") from None
    try:
        return pafs.FileSystem.from_uri(loc)
    except Exception as exc:  # unknown scheme, missing credentials, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"experiment.storage: cannot open {loc}: {first}") from None


def _has_folders(fs: object) -> bool:
    """Whether ``fs`` needs a folder made before a file is written in it: a local filesystem does;
    an object store (S3, GCS) has only keys, and pyarrow's ``create_dir`` would put an empty
    marker object per level on every write."""
    return getattr(fs, "type_name", "") not in ("s3", "gcs")


def write_bytes(loc: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` at ``loc``, all or nothing (a local write goes through a temporary file)."""
    loc = location(loc)
    if is_uri(loc):
        fs, path = _arrow(loc)
        if _has_folders(fs):
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as f:  # an object store replaces an object in one put
            f.write(data)
        return loc
    path = Path(loc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return loc


def read_bytes(loc: str | os.PathLike) -> Optional[bytes]:
    """The bytes at ``loc``, or None when there is nothing there."""
    loc = location(loc)
    if is_uri(loc):
        from pyarrow import fs as pafs

        fs, path = _arrow(loc)
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(path) as f:
            return f.read()
    path = Path(loc)
    return path.read_bytes() if path.is_file() else None


def check_writable(loc: str | os.PathLike) -> None:
    """One line (UserError) when this process cannot write at ``loc``; creates nothing that was not there."""
    loc = location(loc)
    host = socket.gethostname()
    if not is_uri(loc):
        _check_folder(Path(loc), loc, host)
        return
    fs, path = _arrow(loc)
    if getattr(fs, "type_name", "") == "local":  # file://: a folder that may not exist yet, checked as a path
        _check_folder(Path(path), loc, host)
    else:  # an object store: a probe key, deleted at once
        _check_store(fs, f"{path.rstrip('/')}/.sharedsg-probe-{host}-{os.getpid()}", loc, host)


def _check_store(fs: object, probe: str, loc: str, host: str) -> None:
    try:
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except Exception as exc:  # no such bucket, access denied, endpoint unreachable, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"experiment.storage: {loc} is not writable from {host}: {first} (the bucket, its "
                        f"credentials and endpoint: docs/clusters.md)") from None


def _check_folder(path: Path, loc: str, host: str) -> None:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"experiment.storage: {existing} is not a directory (on {host}); "
                        f"set experiment.storage to a directory every node can write")
    try:  # a probe file, removed at once (permissions, read-only mounts, full disks alike)
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".sharedsg-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"experiment.storage: {existing} is not writable on {host} (for {loc}: "
                        f"{exc.strerror or exc}); set experiment.storage to a directory every node can write, "
                        f"or a URI (s3://, gs://)") from None


# -- the driver's files for a URI --------------------------------------------------------------------
def staging_dir(loc: str, cache: Path) -> Path:
    """Where the driver writes the files of URI ``loc`` before they are uploaded."""
    digest = hashlib.sha1(loc.encode()).hexdigest()[:12]
    return cache / "staging" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', loc)[-60:]}-{digest}"


# (local folder, URI) -> {relative path: (size, mtime_ns)} of the files this process uploaded there
_UPLOADED: Dict[Tuple[str, str], Dict[str, Tuple[int, int]]] = {}


def upload_dir(local: Path, loc: str) -> None:
    """Copy the files of the local folder ``local`` to URI ``loc`` (replacing those there), except
    those this process already uploaded there unchanged (same size and modification time): a
    run's log is uploaded on every flush, and most of its files (figures, finished event files)
    do not change between two."""
    fs, path = _arrow(loc)
    done = _UPLOADED.setdefault((str(local), loc), {})
    for file in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        rel = file.relative_to(local).as_posix()
        st = file.stat()  # before reading: a file that grows meanwhile is uploaded again next time
        stamp = (st.st_size, st.st_mtime_ns)
        if done.get(rel) == stamp:
            continue
        dest = f"{path.rstrip('/')}/{rel}"
        if _has_folders(fs):
            fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        with open(file, "rb") as src, fs.open_output_stream(dest) as out:
            shutil.copyfileobj(src, out, 1 << 20)
        done[rel] = stamp
