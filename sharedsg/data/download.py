"""``sharedsg data download``: fetch a dataset into the data root, checking every file.

Omniglot (Sec. 4.1) comes as the two npz files whose sha256 is known; MNIST
(Sec. 5.1) as the four canonical IDX gz files, checked by the MD5 of their
decompressed bytes (gz bytes differ between mirrors). The base URL is
configurable (``data.omniglot_url``, ``data.mnist_url`` or ``--url``) and may be
a ``file://`` URL or a local folder. A download that fails (or is interrupted) leaves nothing
behind: the files and folders it created are removed, so ``sharedsg data check`` still says
absent.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Dict, List, Optional, Tuple

from sharedsg.data.errors import DataError
from sharedsg.data.integrity import KNOWN_SHA256, sha256_file
from sharedsg.data.mnist import FILES, read_idx

#: dataset -> [(file name, sha256 or None)]; files without a sha256 get the dataset's content check.
DOWNLOADS: Dict[str, List[Tuple[str, Optional[str]]]] = {
    "omniglot": [(name, KNOWN_SHA256[f"omniglot/{name}"]) for name in ("images_background.npz", "images_evaluation.npz")],
    "mnist": [(f"{name}.gz", None) for pair in FILES.values() for name in pair],
}


def _open(location: str) -> BinaryIO:
    if "://" not in location:
        return open(location, "rb")
    try:
        return urllib.request.urlopen(location, timeout=60)  # noqa: S310 (user-chosen URL)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{location}: download failed ({getattr(exc, 'reason', exc)}); check the URL or your connection") from None


def fetch(location: str, dest: Path, sha256: Optional[str]) -> Path:
    """Copy ``location`` (URL or path) to ``dest`` via a temporary file; check its sha256 if given."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with _open(location) as source, open(partial, "wb") as target:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
                target.write(block)
    except FileNotFoundError:
        partial.unlink(missing_ok=True)
        raise DataError(f"{location}: not found; check --url") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if sha256 is not None and digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise DataError(f"{location}: sha256 {digest.hexdigest()} is not the expected {sha256}; the download is corrupt or the URL points at another file")
    os.replace(partial, dest)
    return dest


def _verify(dataset: str, path: Path, sha256: Optional[str]) -> None:
    if sha256 is not None and sha256_file(path) != sha256:
        raise DataError(f"{path}: sha256 is not the expected {sha256}; the file is corrupt, run the download again with --force")
    if dataset == "mnist":
        read_idx(path)  # checks the MD5 of the decompressed bytes


def download(dataset: str, root: Path, base: str, force: bool = False) -> List[Path]:
    """Fetch ``dataset`` (omniglot | mnist) from ``base`` into ``root/<dataset>``; return the files.

    Files already present and valid are kept unless ``force``. On any failure the files and
    folders this call created are removed before the error propagates.
    """
    if dataset not in DOWNLOADS:
        raise DataError(f"no download for '{dataset}'; choose one of {', '.join(DOWNLOADS)} (SDD and inD need their own licence steps)")
    folder = root / dataset
    created_dirs = [d for d in (folder, *folder.parents) if not d.exists()]  # innermost first
    written: List[Path] = []
    new_files: List[Path] = []
    try:
        for name, sha256 in DOWNLOADS[dataset]:
            dest = folder / name
            if dest.is_file() and not force:
                try:
                    _verify(dataset, dest, sha256)
                    written.append(dest)
                    continue
                except DataError:
                    pass  # fetch it again
            location = f"{base.rstrip('/')}/{name}" if "://" in base else str(Path(base).expanduser() / name)
            existed = dest.exists()
            fetch(location, dest, sha256)
            if not existed:
                new_files.append(dest)
            try:
                _verify(dataset, dest, None)
            except DataError:
                dest.unlink(missing_ok=True)
                raise
            written.append(dest)
    except BaseException:
        for path in new_files:
            path.unlink(missing_ok=True)
        for d in created_dirs:
            try:
                d.rmdir()
            except OSError:  # not empty: something else is in it
                break
        raise
    return written
