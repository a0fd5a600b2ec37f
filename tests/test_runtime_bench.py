"""``sharedsg bench runtime --json`` runs end to end (numbers are in docs/runtime.md)."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # each benchmark starts Ray in a subprocess

from sharedsg.bench.raytools import TINY  # noqa: E402


def test_bench_runtime_smoke():
    proc = subprocess.run([sys.executable, "-m", "sharedsg.cli", "bench", "runtime", "--json", "--steps", "3",
                           "--warmup", "1", "--reps", "2", "--pushes", "10", *[t for t in TINY if "obs_len" not in t
                                                               and "pred_len" not in t]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("step_s_local", "ratio_replica", "ratio_rpc", "steps_per_s_1", "steps_per_s_2",
                "push_targets_per_s", "train_targets_per_s", "version_lag_1", "peak_rss_mb",
                "steps_per_s_4", "server_cpu_ms_per_step_1", "server_cpu_ms_per_step_4"):
        assert out[key] > 0 or key.startswith("version_lag"), key
    assert out["reps"] == 2 and 0 <= out["coalesced_2"] <= 1
    low, high = out["scaling_2_range"]
    assert low <= out["scaling_2"] <= high


def test_bench_server_smoke():
    """Pushers against the sink and both policies; every push accounted for exactly once."""
    proc = subprocess.run([sys.executable, "-m", "sharedsg.cli", "bench", "server", "--json", "--streams", "2",
                           "--seconds", "1.5", "--warmup", "0.5", "--records", "2", "--rate", "10",
                           "data.obs_len=8", "data.pred_len=8", "learner.batch_size=8"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["rows"]) == {"sink", "exact", "buffered"} and out["bytes_per_push"] > 0
    for name, rows in out["rows"].items():
        (row,) = rows
        assert row["streams"] == 2 and row["accepted_per_s"] > 0 and row["push_errors"] == 0, (name, row)
        if name != "sink":
            assert row["exact_once"], (name, row)
    assert out["rows"]["exact"][0]["dropped"] == 0
