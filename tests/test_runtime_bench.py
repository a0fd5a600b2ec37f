"""``sharedsg bench runtime --json`` runs end to end (numbers are in docs/runtime.md)."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("ray")

from sharedsg.runtime.testing import TINY  # noqa: E402


def test_bench_runtime_smoke():
    proc = subprocess.run([sys.executable, "-m", "sharedsg.cli", "bench", "runtime", "--json", "--steps", "3",
                           "--warmup", "1", "--reps", "2", "--pushes", "10", *[t for t in TINY if "obs_len" not in t
                                                               and "pred_len" not in t]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("step_s_local", "ratio_replica", "ratio_rpc", "steps_per_s_1", "steps_per_s_2",
                "push_targets_per_s", "version_lag_1", "peak_rss_mb"):
        assert out[key] > 0 or key.startswith("version_lag"), key
    assert out["reps"] == 2 and 0 <= out["coalesced_2"] <= 1
    low, high = out["scaling_2_range"]
    assert low <= out["scaling_2"] <= high
