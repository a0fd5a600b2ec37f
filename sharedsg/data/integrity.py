"""Checksums of the canonical data files (docs/data.md lists their sources) and helpers to verify them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Optional

from sharedsg.data.errors import DataError

#: sha256 of files whose bytes are canonical, keyed by path relative to the data root.
KNOWN_SHA256: Dict[str, str] = {
    "omniglot/images_background.npz": "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
    "omniglot/images_evaluation.npz": "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276",
    "omniglot/images_background_small1.zip": "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
    "omniglot/images_background_small2.zip": "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
    "omniglot/characters.csv": "8dc382fabf4f70854d053c35a34c87481fe3c9f785d78d1098385fbb6b7b166f",
    "sdd/estimated_scales.yaml": "98094e3fbec85fc02c1b46936258de318b34e6fb53e792934036a459cca3c406",
    "sdd/deathCircle/video2/annotations.txt": "13e13609aac8fae98ffcee07275a0bb6860a0a3402f66009f1fa807d7712d74f",
    "sdd/deathCircle/video4/annotations.txt": "e399132399e43b4d32f1bda1740e73c3061293574e6f4b44841a286db384acaf",
    "sdd/gates/video2/annotations.txt": "00a80fe546c83112ab15293caf3f4188edb943953026974aca14b11463ce59aa",
    "sdd/gates/video4/annotations.txt": "c52476669b3789d17af30e4f0e316351158e451c027cea0366bcde16cdece92b",
    "sdd/gates/video5/annotations.txt": "2bd52643eb760408ad0285fba1fae2c0d9f09c235abc91c0ae2d6c9d50cf8d71",
    "sdd/gates/video6/annotations.txt": "f247a4255bbd25923b1379c2ee4aeaa7add6155398d6be1c58ffd7084ce6b3ce",
    "sdd/gates/video7/annotations.txt": "807df1a5d4e76335fa168bf8687fdfd4c3484c546124b3d289d8dbaeb51085a0",
    "sdd/gates/video8/annotations.txt": "6b48fcd595067453a8069e2bf8a4dcdf2033c75e1c6e48f5d7854fe4fb04fd54",
    "sdd/hyang/video12/annotations.txt": "9c2af4cf771ac71431eb0702839a9429a4fe3dc482e950a5ba7df0ac084ca4a2",
    "sdd/hyang/video13/annotations.txt": "cfd8398b5a08b5279924f4f467fe1cdcd8a4e6abddda8ed9477a7d93574a9fdf",
    "sdd/hyang/video14/annotations.txt": "3ac70cee97692c4d0b20a9431d6c4627e7078093300b255bb196cfdde2a2d355",
    "sdd/hyang/video7/annotations.txt": "9378f9697e7f7643dc0459f8872366ea621e84b1ca4a8ae739da8cb612fc019e",
    "sdd/hyang/video8/annotations.txt": "7261c56536f8ce77bee3b03a340e25c8949685a4a6f21b57ed3d51ff44a538d9",
    "sdd/hyang/video9/annotations.txt": "4f5b894f892b8412f70d439599aee44ac8c097ac953594cd2dc6eea05454911b",
    "sdd/little/video0/annotations.txt": "8da212a093d1c62103f163cfa3668fa446ffe967eed198e16f771657f1d3a9d8",
    "sdd/nexus/video10/annotations.txt": "ceb3637cfe2d5d921761d62040bfa213352ef58868760067fb0007b88fe883ab",
    "sdd/nexus/video3/annotations.txt": "790b5efbf072deb8db6591ddc25d8c07892d9f6b7d556e68db45133e0792553b",
    "sdd/nexus/video4/annotations.txt": "2ac32619a61c44e248277cd4c8f19744bac3c53ae5ca851f93599c949accf5d8",
    "sdd/nexus/video5/annotations.txt": "fafc23587384509d183965d2f4dc552fc01b8d846dfa11031fa38f69c5d9b370",
    "sdd/quad/video0/annotations.txt": "5c28df1a53f51f783f39f358f41b6603e17d86fb352cd15ba96131464af53514",
    "sdd/quad/video1/annotations.txt": "aabfce514109321ef641f21ab56245d1bef43a975cb6cc901362927fc84d9a64",
    "sdd/quad/video2/annotations.txt": "27603be364d8b14b739759388695dbf138e4e5fd0bdf2b27eea1fdf34fcab739",
    "sdd/quad/video3/annotations.txt": "8715767873e2af1214d076211ee1f172eb8f90f3785f52f3f3dd341f1920b2b9",
}

#: MD5 of the *decompressed* MNIST IDX files (the published canonical values).
MNIST_RAW_MD5: Dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(root: Path) -> Dict[str, str]:
    """``MANIFEST.sha256`` under ``root`` (lines ``sha256  bytes  relative/path``), or {} if absent."""
    manifest = root / "MANIFEST.sha256"
    if not manifest.is_file():
        return {}
    table: Dict[str, str] = {}
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataError(f"{manifest}: line {number}: expected 'sha256  bytes  path', got {line!r}; fix or delete the manifest")
        table[parts[2]] = parts[0]
    return table


def expected_sha256(root: Path, relative: str, manifest: Optional[Dict[str, str]] = None) -> Optional[str]:
    """The reference sha256 of ``relative``: the root's manifest first, else the built-in table."""
    table = read_manifest(root) if manifest is None else manifest
    return table.get(relative) or KNOWN_SHA256.get(relative)


def checksum_status(path: Path, expected: Optional[str]) -> str:
    """'ok', 'mismatch' or 'unknown' (no reference value) for one file."""
    if expected is None:
        return "unknown"
    return "ok" if sha256_file(path) == expected else "mismatch"
