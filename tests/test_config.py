"""Config layering, validation and one-line errors (exit 2, no traceback) from the CLI."""

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

from sharedsg import cli
from sharedsg.config import (Config, ConfigError, DataConfig, ExperimentConfig, FewShotConfig, LearnerConfig,
                             MetaTestConfig, ModelConfig, RareConfig, ResourcesConfig, ScheduleConfig, SGConfig,
                             StreamConfig, check_device, data_root, load_config)
from sharedsg.configcheck import FOLDER_NAME_HINT
from sharedsg.data.sources import resolve_root

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


# -- every key, every class of mistake -------------------------------------------------------

def _leaves(schema=Config, prefix=""):
    """(key, declared type, field metadata) of every leaf key; streams.* through the default stream."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        tp, key = hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            yield from _leaves(tp, f"{key}.")
        elif typing.get_origin(tp) is dict and dataclasses.is_dataclass(typing.get_args(tp)[1]):
            yield from _leaves(typing.get_args(tp)[1], f"{key}.cyclist.")
        elif typing.get_origin(tp) is dict:  # a mapping of numbers, e.g. fewshot.cpu_s
            yield f"{key}.maml", typing.get_args(tp)[1], f.metadata
        else:
            yield key, tp, f.metadata


def _sections(schema=Config, prefix=""):
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        tp, key = hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            yield key
            yield from _sections(tp, f"{key}.")
        elif typing.get_origin(tp) is dict:
            yield key
            if dataclasses.is_dataclass(typing.get_args(tp)[1]):
                yield f"{key}.cyclist"
                yield from _sections(typing.get_args(tp)[1], f"{key}.cyclist.")


LEAVES = list(_leaves())
WRONG_TYPE = {int: "1.5", float: "abc", bool: "2", str: "[1,2]"}


def _wrong_typed(tp) -> str:
    return "5" if typing.get_origin(tp) is list else WRONG_TYPE[tp]


def _cli_error(capsys, *overrides) -> str:
    """`sharedsg run configs/local_small.yaml OVERRIDES --local` in this process: exit 2, one line."""
    capsys.readouterr()
    code = cli.main(["run", str(REPO / "configs" / "local_small.yaml"), *overrides, "--local"])
    out, err = capsys.readouterr()
    assert code == 2, (overrides, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sharedsg: error: "), (overrides, err)
    assert "Traceback" not in err
    return lines[0]


def test_the_walk_sees_every_section():
    keys = {key for key, _, _ in LEAVES}
    assert {"model.slots", "learner.device", "streams.cyclist.schedule.every", "experiment.seeds", "fewshot.methods"} <= keys
    assert len(keys) == sum(len(dataclasses.fields(s)) for s in (
        ModelConfig, SGConfig, LearnerConfig, DataConfig, ScheduleConfig, ExperimentConfig, ResourcesConfig,
        FewShotConfig, RareConfig, MetaTestConfig)) + len(dataclasses.fields(StreamConfig)) - 1


def test_every_key_with_a_wrong_typed_value_is_exit_2_one_line(capsys, tmp_path):
    for key, tp, _ in LEAVES:
        line = _cli_error(capsys, f"experiment.run_dir={tmp_path}", f"{key}={_wrong_typed(tp)}")
        assert key in line, line
    for key in _sections():
        line = _cli_error(capsys, f"experiment.run_dir={tmp_path}", f"{key}=3")
        assert key in line and "mapping" in line, line
    assert not any(tmp_path.iterdir()), "nothing is written for a bad config"


def test_every_number_declares_its_range_and_rejects_non_finite_values():
    for key, tp, meta in LEAVES:
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp
        if item in (int, float):
            assert "bounds" in meta or "choices" in meta, f"{key} declares no range (configcheck.bounded)"
        if item is float:
            for bad in ("nan", "inf", "-inf"):
                with pytest.raises(ConfigError, match=f"config error: {re.escape(key)}: must be a finite number"):
                    load_config(None, [f"{key}={bad}"])


def test_every_bound_and_choice_is_enforced():
    for key, tp, meta in LEAVES:
        listed = typing.get_origin(tp) is list
        bounds = meta.get("bounds")
        if bounds is not None:
            low = min([b for b in (bounds.ge, bounds.gt) if b is not None] + list(bounds.also)) - 1
            high = [b + 1 for b in (bounds.le, bounds.lt) if b is not None]
            for outside in [low] + high:
                value = f"[{outside}]" if listed else str(outside)
                with pytest.raises(ConfigError, match=f"config error: {re.escape(key)}(\\[0\\])?: must be ") as info:
                    load_config(None, [f"{key}={value}"])
                assert "\n" not in str(info.value)
        if "choices" in meta:
            wrong = "99" if tp is int else "nonsense"
            value = f"[{wrong}]" if listed else wrong
            with pytest.raises(ConfigError, match=f"config error: {re.escape(key)}: '{wrong}' is not one of "):
                load_config(None, [f"{key}={value}"])


@pytest.mark.parametrize("override,message", [
    ("data.max_train_tracks=-1", "data.max_train_tracks: must be non-negative, got -1"),
    ("sg.max_staleness=-3", "sg.max_staleness: must be non-negative, got -3"),
    ("learner.lr=0", "learner.lr: must be positive, got 0.0"),
    ("data.test_fraction=1", "data.test_fraction: must be in (0, 1), got 1.0"),
    ("learner.lam=-0.1", "learner.lam: must be in [0, 1], got -0.1"),
    ("fewshot.ways=1", "fewshot.ways: must be at least 2, got 1"),
    ("fewshot.test_adapt_steps=-2", "fewshot.test_adapt_steps: must be -1 or >= 0, got -2"),
    ("streams.cyclist.seed=-5", "streams.cyclist.seed: must be -1 or >= 0, got -5"),
    ("resources.gpus_per_stream=-0.5", "resources.gpus_per_stream: '-0.5' must be auto or a number of GPUs >= 0"),
    ("experiment.seeds=[0,-1]", "experiment.seeds[1]: must be non-negative, got -1"),
    ("fewshot.maml_order=3", "fewshot.maml_order: '3' is not one of 1, 2"),
    ("rare.methods=[proposed,maml]", "rare.methods: 'maml' is not one of proposed, baseline"),
    ("experiment.name=a/b", f"experiment.name: 'a/b' must be {FOLDER_NAME_HINT}"),
    ("experiment.name=..", f"experiment.name: '..' must be {FOLDER_NAME_HINT}"),
    ("experiment.run_name=../up", f"experiment.run_name: '../up' must be empty or {FOLDER_NAME_HINT}"),
    ("experiment.run_name=/tmp/abs", f"experiment.run_name: '/tmp/abs' must be empty or {FOLDER_NAME_HINT}"),
    ("experiment.run_name=.", f"experiment.run_name: '.' must be empty or {FOLDER_NAME_HINT}"),
    ("streams.cyclist.group=../g", f"streams.cyclist.group: '../g' must be empty or {FOLDER_NAME_HINT}"),
    ("streams={../out: {data_class: cyclist}}", f"streams: the stream name '../out' must be {FOLDER_NAME_HINT}"),
    ("model.persist_memory=1", "model.persist_memory: must be true or false, got 1"),
    ("fewshot.settings=5w1s", "fewshot.settings: must be a list"),
    ("fewshot.settings=[5x1]", "fewshot.settings: '5x1' is not NwKs"),
    ("learner.lr=1e999", "learner.lr: must be a finite number, got inf"),
    ("fewshot.step_loss=true", "fewshot.step_loss: each support item would be shown the label it is to predict"),
])
def test_range_finiteness_and_shape_messages(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value).startswith(f"config error: {message}"), str(info.value)


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_strings_that_load(device):
    assert load_config(None, [f"learner.device={device}"]).learner.device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:-1", "cuda:x", "CPU", "cuda:0:1", "mps"])
def test_bad_device_strings(device):
    with pytest.raises(ConfigError, match=f"learner.device: '{re.escape(device)}' must be cpu, cuda or cuda:N"):
        load_config(None, [f"learner.device={device}"])


def test_a_cuda_device_this_machine_lacks_is_one_line():
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last device; cuda:0 on a CPU-only machine
    with pytest.raises(ConfigError, match=f"learner.device: '{missing}' but this machine has") as info:
        check_device(missing)
    assert "\n" not in str(info.value)
    check_device("cpu")


def test_local_run_on_a_missing_cuda_device_is_exit_2(capsys, tmp_path):
    line = _cli_error(capsys, f"experiment.run_dir={tmp_path}", f"learner.device=cuda:{torch.cuda.device_count()}")
    assert "learner.device" in line and "use learner.device=cpu" in line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("text,kind", [
    ("- model\n- sg\n", "not a list"),
    ("5\n", "not the int 5"),
    ("just words\n", "not the str 'just words'"),
])
def test_config_file_top_level_must_be_a_mapping(tmp_path, text, kind):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=f"the top level must be a mapping of settings .*, {kind}$") as info:
        load_config(f)
    assert str(f) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["", "\n# only a comment\n", "null\n", "{}\n"])
def test_an_empty_config_file_means_no_settings(tmp_path, text):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    assert load_config(f) == load_config(None)


def test_a_yaml_section_given_a_scalar_names_the_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  slots: 4\nstreams:\n  cyclist:\n    schedule: every\n")
    with pytest.raises(ConfigError, match="config error: streams.cyclist.schedule: must be a mapping of settings, got 'every'"):
        load_config(f)


def test_cli_list_config_file_is_one_line_exit_2(tmp_path):
    f = tmp_path / "list.yaml"
    f.write_text("- experiment\n- model\n")
    proc = subprocess.run([sys.executable, "-m", "sharedsg.cli", "run", str(f), "--local", "learner.lr=nan"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "top level must be a mapping" in lines[0], proc.stderr


# -- where the data is ---------------------------------------------------------------------------

def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("SHAREDSG_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "sharedsg"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".local" / "share" / "sharedsg"
    monkeypatch.setenv("SHAREDSG_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    cfg = load_config(None, [f"data.root={tmp_path / 'cfg'}"])
    assert resolve_root(cfg.data) == tmp_path / "cfg"


def test_the_data_root_is_pinned_on_the_driver_only_where_it_exists(monkeypatch, tmp_path):
    """A driver that has the data folder pins it (its actors read what it checked); one that has not
    (a laptop submitting to a cluster) leaves data.root empty for every node to resolve its own."""
    monkeypatch.setenv("SHAREDSG_DATA", str(tmp_path / "absent"))
    assert load_config(None, []).data.root == ""
    (tmp_path / "here").mkdir()
    monkeypatch.setenv("SHAREDSG_DATA", str(tmp_path / "here"))
    assert load_config(None, []).data.root == str(tmp_path / "here")


def test_the_package_never_refers_to_a_folder_beside_the_checkout():
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "sharedsg").rglob("*.py")
                 if "../shared" in p.read_text() or "shared/data" in p.read_text()]
    assert offenders == []
