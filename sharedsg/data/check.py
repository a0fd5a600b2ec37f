"""``sharedsg data check``: every dataset under a root, as present (with its counts and checksum
status), absent (with how to get it) or damaged (with its one-line error), and the shipped SDD
sample.

Every dataset is checked independently: a damaged one is reported and the others are still
counted. A dataset none of whose files are there is absent, also when its folder exists (e.g.
an empty ``mnist/``) or when the root itself does not.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np

from sharedsg.config import DataConfig
from sharedsg.data.errors import HOW_TO_GET, DataError
from sharedsg.data.ind import find_ind_dir, load_ind
from sharedsg.data.integrity import checksum_status, expected_sha256, read_manifest
from sharedsg.data.mnist import FILES, find_idx, read_idx
from sharedsg.data.omniglot import DRAWERS, HALVES, POOLS, SHIPPED_TABLE, detect_layout, read_character_table
from sharedsg.data.sample import SAMPLE_PATH, load_sample
from sharedsg.data.sdd import annotation_files, load_sdd

Report = Dict[str, Any]


def _checksums(root: Path, folder: Path, manifest: Dict[str, str]) -> Dict[str, str]:
    """{relative path: ok | mismatch | unknown} for every file under ``folder``; 'missing' for listed absent files."""
    result: Dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        result[relative] = checksum_status(path, expected_sha256(root, relative, manifest))
    prefix = folder.relative_to(root).as_posix() + "/"
    for relative in manifest:
        if relative.startswith(prefix) and relative not in result:
            result[relative] = "missing"
    return result


def _npz_count(path: Path) -> int:
    """Characters in an Omniglot npz, from the array header only (no decompression of the pixels)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("images.npy") as member:
            version = np.lib.format.read_magic(member)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape = reader(member)[0]
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path}: corrupted npz ({exc}); download it again") from None
    return int(shape[0])


def check_omniglot(folder: Path) -> Report:
    layout = detect_layout(folder)
    if layout == "npz":
        characters = sum(_npz_count(folder / f"{stem}.npz") for stem, _, _ in HALVES)
        images = characters * DRAWERS
    else:
        with zipfile.ZipFile(folder / "images_background.zip") as a, zipfile.ZipFile(folder / "images_evaluation.zip") as b:
            images = sum(n.endswith(".png") for n in a.namelist() + b.namelist())
        characters = images // DRAWERS
    table_file = folder / "characters.csv"
    table = read_character_table(table_file if table_file.is_file() else None)
    pools = {pool: sorted(i for i, row in table.items() if row[2] in splits) for pool, splits in POOLS.items()}
    return {
        "layout": layout,
        "characters": characters,
        "images": images,
        "train_characters": len(pools["train"]),
        "test_characters": len(pools["test"]),
        "characters_in_both_splits": len(set(pools["train"]) & set(pools["test"])),
        "character_table": str(table_file if table_file.is_file() else SHIPPED_TABLE),
    }


def check_mnist(folder: Path) -> Report:
    report: Report = {}
    for split, (image_name, label_name) in FILES.items():
        images = read_idx(find_idx(folder, image_name))
        labels = read_idx(find_idx(folder, label_name))
        report[split] = int(len(images))
        report[f"{split}_per_class"] = np.bincount(labels, minlength=10).tolist()
    report["raw_md5"] = "ok"
    return report


def check_sdd(folder: Path) -> Report:
    tracks = load_sdd(folder, fps=DataConfig.sdd_fps)
    return {"videos": len(annotation_files(folder)), "tracks": tracks.track_counts, "skipped": tracks.skipped}


def check_ind(root: Path) -> Report:
    folder = find_ind_dir(root)
    tracks = load_ind(folder)
    recordings = len({p.name.split("_")[0] for p in folder.glob("*_tracks.csv")})
    return {"folder": str(folder), "recordings": recordings, "tracks": tracks.track_counts, "skipped": tracks.skipped}


def check_sample() -> Report:
    tracks = load_sample(SAMPLE_PATH)
    return {"path": str(SAMPLE_PATH), "tracks": tracks.track_counts}


def _found(root: Path) -> Dict[str, bool]:
    """Which datasets have any of their files under ``root``."""
    omniglot, mnist = root / "omniglot", root / "mnist"
    try:
        find_ind_dir(root)
        ind = True
    except DataError:
        ind = False
    return {
        "omniglot": any((omniglot / f"{stem}.{ext}").is_file() for stem, _, _ in HALVES for ext in ("npz", "zip")),
        "mnist": any((mnist / n).is_file() or (mnist / f"{n}.gz").is_file() for pair in FILES.values() for n in pair),
        "sdd": any((root / "sdd").glob("*/video*/annotations.txt")),
        "ind": ind,
    }


def check_root(root: Path) -> Report:
    """A report per dataset: status (present | absent | damaged), counts, checksums; ``how`` to
    get an absent one; the shipped sample last."""
    manifest = read_manifest(root)
    checks: Dict[str, Callable[[], Report]] = {
        "omniglot": lambda: check_omniglot(root / "omniglot"),
        "mnist": lambda: check_mnist(root / "mnist"),
        "sdd": lambda: check_sdd(root / "sdd"),
        "ind": lambda: check_ind(root),
    }
    datasets: Dict[str, Report] = {}
    for name, found in _found(root).items():
        if not found:
            datasets[name] = {"status": "absent", "how": HOW_TO_GET[name]}
            continue
        try:
            report = {"status": "present", **checks[name]()}
        except DataError as exc:
            report = {"status": "damaged", "error": str(exc)}
        folder = root / name
        if folder.is_dir() and name != "ind":
            report["checksums"] = _checksums(root, folder, manifest)
            bad = [p for p, v in report["checksums"].items() if v in ("mismatch", "missing")]
            if bad and report["status"] == "present":
                report.update(status="damaged", error=f"sha256 mismatch or missing file: {', '.join(bad)}; download it again")
        datasets[name] = report
    try:
        datasets["sample"] = {"status": "present", **check_sample()}
    except DataError as exc:
        datasets["sample"] = {"status": "damaged", "error": str(exc)}
    return {"root": str(root), "root_exists": root.is_dir(), "datasets": datasets}


def summary_lines(report: Report) -> list[str]:
    """Human-readable lines, one per dataset."""
    lines = [f"data root: {report['root']}" + ("" if report["root_exists"] else " (no such folder: every dataset absent)")]
    for name, entry in report["datasets"].items():
        status = entry["status"]
        if status == "absent":
            lines.append(f"  {name:9s} absent   to get it: {entry['how']}")
            continue
        if status == "damaged":
            lines.append(f"  {name:9s} damaged  {entry['error']}")
            continue
        if name == "omniglot":
            detail = (f"{entry['characters']} characters, {entry['images']} images ({entry['layout']} layout); "
                      f"split {entry['train_characters']} train / {entry['test_characters']} test")
        elif name == "mnist":
            detail = f"train {entry['train']}, test {entry['test']}; raw MD5 {entry['raw_md5']}"
        else:  # sdd, ind, sample
            tracks = entry["tracks"]
            detail = f"tracks: {tracks['cyclist']} cyclist, {tracks['pedestrian']} pedestrian"
            skipped = {k: v for k, v in entry.get("skipped", {}).items() if v}
            if skipped:
                detail += "; skipped " + ", ".join(f"{v} {k}" for k, v in skipped.items())
            if name == "sample":
                detail += f" (shipped: {entry['path']})"
        sums = entry.get("checksums", {})
        if sums:
            counts = {s: list(sums.values()).count(s) for s in ("ok", "unknown")}
            detail += "; sha256 " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        lines.append(f"  {name:9s} present  {detail}")
    return lines
