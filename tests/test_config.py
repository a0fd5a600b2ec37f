"""Config layering, validation and one-line errors (exit 2, no traceback) from the CLI."""

import subprocess
import sys
from pathlib import Path

import pytest

from sharedsg.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent


def test_defaults_yaml_and_overrides_layer(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  slots: 7\nlearner:\n  mixing: bp_only\n")
    cfg = load_config(f, ["model.slots=12", "streams.pedestrian.data_class=pedestrian"])
    assert cfg.model.slots == 12
    assert cfg.learner.mixing == "bp_only"
    assert cfg.model.encoder_hidden == 30  # default from the dataclass
    assert set(cfg.streams) == {"cyclist", "pedestrian"}
    assert cfg.streams.pedestrian.schedule.every == 1


@pytest.mark.parametrize("override,pattern", [
    ("model.slotz=3", "model.slotz"),
    ("model.slots=abc", "model.slots"),
    ("model.slots=0", "model.slots"),
    ("learner.mixing=fast", "learner.mixing"),
    ("learner.lam=2", "learner.lam"),
])
def test_bad_values_raise_config_error_naming_the_key(override, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(None, [override])
    assert "\n" not in str(info.value)


def test_every_shipped_config_loads():
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        load_config(path)


@pytest.mark.parametrize("override,key", [
    ("model.unknown=1", "model.unknown"),
    ("model.slots=ten", "model.slots"),
    ("model.slots=-2", "model.slots"),
    ("learner.mixing=magic", "learner.mixing"),
])
def test_cli_bad_input_is_one_line_exit_2(override, key, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sharedsg.cli", "run", str(REPO / "configs" / "local_small.yaml"), override,
         "--local", f"experiment.run_dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and key in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir()), "nothing is written for a bad config"


def test_cli_missing_config_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sharedsg.cli", "run", str(tmp_path / "nope.yaml"), "--local"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
