"""Data throughput: Omniglot cold/warm load and N-way K-shot episodes per second (Sec. 4.1)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

from sharedsg.config import data_root
from sharedsg.data.episodes import EpisodeSampler
from sharedsg.data.omniglot import OmniglotPool, load_omniglot
from sharedsg.data.sample import load_sample

SETTINGS = ((5, 1), (20, 5))


def episodes_per_second(pool: OmniglotPool, ways: int, shots: int, queries: int, seconds: float) -> float:
    sampler = EpisodeSampler(pool, ways, shots, queries, seed=0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.sample()
        count += 1
    return count / (time.perf_counter() - start)


def run_data_bench(args: argparse.Namespace) -> Dict[str, Any]:
    """Cold load (decode + resize into a fresh cache), warm load (from it), episodes/s on the train pool."""
    folder = (args.root or data_root()) / "omniglot"
    cache = Path(tempfile.mkdtemp(prefix="sharedsg-bench-"))
    try:
        start = time.perf_counter()
        load_omniglot(folder, cache)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        data = load_omniglot(folder, cache)
        warm = time.perf_counter() - start
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    load_sample()
    sample = time.perf_counter() - start
    pool = OmniglotPool(data, "train")
    result: Dict[str, Any] = {
        "omniglot_images": data.num_images,
        "omniglot_cold_load_s": round(cold, 3),
        "omniglot_warm_load_s": round(warm, 4),
        "sample_load_s": round(sample, 4),
        "queries_per_class": args.queries,
    }
    for ways, shots in SETTINGS:
        rate = episodes_per_second(pool, ways, shots, args.queries, args.seconds)
        result[f"episodes_per_s_{ways}way_{shots}shot"] = round(rate, 1)
    return result
