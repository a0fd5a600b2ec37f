"""RunLog (sharedsg/harness/runlog.py): the config as text and hparams, read back from the event
files; no placeholder chart; nothing on disk before the first write."""

from __future__ import annotations

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sharedsg.config import load_config
from sharedsg.harness.runlog import RunLog


def _read(directory):
    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_config_is_text_and_hparams_without_a_placeholder_chart(tmp_path):
    log = RunLog(tmp_path / "run")
    assert not (tmp_path / "run").exists()  # created with the first thing written
    log.config("cyclist", load_config(None, ["model.slots=7"]))
    log.scalars("cyclist", 0, {"loss/train": 1.5})
    log.close()
    acc = _read(tmp_path / "run" / "cyclist")
    assert acc.Tags()["scalars"] == ["loss/train"]
    assert "\n  slots: 7\n" in acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    hparams = _read(tmp_path / "run" / "cyclist" / ".")
    assert "_hparams_/experiment" in hparams.PluginTagToContent("hparams")
    assert not [t for t in hparams.Tags()["scalars"] if t.startswith("hparam/")]


def test_metrics_given_are_the_hparams_metrics(tmp_path):
    log = RunLog(tmp_path)
    log.config("server", load_config(None, []), metrics={"hparam/accuracy": 0.75})
    log.close()
    events = _read(tmp_path / "server")
    assert [(e.step, e.value) for e in events.Scalars("hparam/accuracy")] == [(0, 0.75)]
