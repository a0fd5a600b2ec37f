"""``sharedsg report`` (sharedsg/commands/report.py, sharedsg/experiments/report.py) on the
``results.json`` files of real small runs: a table per experiment with the numbers the runs
wrote; a missing or empty folder and a damaged file are one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sharedsg.cli import main

REPO = Path(__file__).resolve().parent.parent


def _run(capsys, *argv: str) -> tuple:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def stream_runs(tmp_path_factory) -> Path:
    """A run folder with real results.json files of the three stream experiments, each a few iterations."""
    root = tmp_path_factory.mktemp("runs")
    store = [f"experiment.storage={root}"]
    assert main(["run", str(REPO / "configs/local_small.yaml"), "--local", "experiment.iterations=4",
                 "experiment.eval_every=2", "experiment.run_name=small", *store]) == 0
    assert main(["run", str(REPO / "configs/knowledge_sharing.yaml"), "--local", "experiment.iterations=4",
                 "experiment.eval_every=2", "experiment.seeds=[0,1]", "streams.pedestrian.schedule.start=1",
                 "streams.pedestrian.schedule.every=2", "experiment.run_name=ks", *store]) == 0
    assert main(["run", str(REPO / "configs/trajectory_metatest.yaml"), "--local", "data.format=sample",
                 "metatest.pretrain_iterations=2", "metatest.adapt_iterations=2", "experiment.seeds=[0]",
                 "metatest.methods=[proposed,baseline,supervised]", "experiment.run_name=mt", *store]) == 0
    return root


def _section(text: str, run: str) -> str:
    """The part of a report under the heading of ``run`` (a folder under the reported one)."""
    (part,) = [p for p in text.split("\n## ") if p.splitlines()[0].endswith(f"/{run}")]
    return part


def _rows(text: str, first_cell: str) -> list:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first_cell}")]


def test_a_table_per_stream_experiment_with_the_numbers_it_wrote(stream_runs, capsys):
    code, out, err = _run(capsys, "report", str(stream_runs))
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("## ")] == [
        f"## {stream_runs.as_posix()}/{d}" for d in ("knowledge_sharing/ks", "local_small/small", "trajectory_metatest/mt")]

    ks, part = json.loads((stream_runs / "knowledge_sharing/ks/results.json").read_text()), _section(out, "ks")
    rows = {(r[0], r[1]): r for r in _rows(part, "pedestrian") + _rows(part, "cyclist")}
    assert set(rows) == {(role, arm) for role in ("pedestrian", "cyclist") for arm in ("shared", "separate")}
    for (role, arm), row in rows.items():
        final = ks["mse"][role][arm]["final"]
        assert row[2] == f"{final['mean']:.4g} ± {final['std']:.4g}"
        assert row[3] == " / ".join(f"{v:.4g}" for v in final["values"]) and len(final["values"]) == 2
        assert row[4].startswith(f"{ks['mse'][role][arm]['auc']['mean']:.4g} ± ")

    mt, part = json.loads((stream_runs / "trajectory_metatest/mt/results.json").read_text()), _section(out, "mt")
    methods = [r[0] for r in _rows(part, "")[1:]]  # below the header
    assert methods == ["proposed", "baseline", "supervised"]
    for m in methods:
        (row,) = _rows(part, m)
        assert row[1] == f"{mt['mse'][m]['before_adaptation']['mean']:.4g}"
        assert row[2].startswith(f"{mt['mse'][m]['final']['mean']:.4g} ± ")
    red = 100 * mt["proposed_vs_baseline_final_reduction"]
    assert f"final MSE: {abs(red):.1f}% {'lower' if red >= 0 else 'higher'}" in part

    small = json.loads((stream_runs / "local_small/small/results.json").read_text())
    (row,) = _rows(_section(out, "small"), "cyclist")
    assert row == ["cyclist", "4", f"{small['streams']['cyclist']['final_loss_eval']:.4g}"]


def test_one_run_folder_and_out_file(stream_runs, tmp_path, capsys):
    printed = _run(capsys, "report", str(stream_runs / "knowledge_sharing/ks"))[1]
    assert printed.splitlines()[0] == f"## {(stream_runs / 'knowledge_sharing/ks').as_posix()}"
    assert "Trajectory meta-test" not in printed
    out = tmp_path / "ks.md"
    code, stdout, err = _run(capsys, "report", str(stream_runs / "knowledge_sharing/ks"), "--out", str(out))
    assert code == 0 and stdout == "" and err.strip() == f"report: {out}"
    assert out.read_text() == printed


def _one_line_exit_2(capsys, argv, *words):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_missing_or_empty_folder_is_one_line(tmp_path, capsys):
    _one_line_exit_2(capsys, ["report", str(tmp_path / "nowhere")], "no such folder")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    _one_line_exit_2(capsys, ["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r.md")], "no results.json")
    assert not (tmp_path / "r.md").exists()


@pytest.mark.parametrize("damage", ["truncated", "list", "foreign"])
def test_a_damaged_results_file_is_one_line_and_nothing_is_written(stream_runs, tmp_path, capsys, damage):
    run = tmp_path / "runs"
    shutil.copytree(stream_runs, run)
    bad = run / "trajectory_metatest/mt/results.json"
    text = bad.read_text()
    bad.write_text({"truncated": text[: len(text) // 2], "list": "[1, 2]",
                    "foreign": json.dumps({"kind": "metatest", "seeds": [0]})}[damage])
    out = tmp_path / "report.md"
    _one_line_exit_2(capsys, ["report", str(run), "--out", str(out)], str(bad), "damaged")
    assert not out.exists()


def test_out_into_a_missing_folder_is_one_line(stream_runs, tmp_path, capsys):
    _one_line_exit_2(capsys, ["report", str(stream_runs), "--out", str(tmp_path / "no" / "r.md")], "does not exist")
    assert not (tmp_path / "no").exists()


@pytest.mark.slow
@pytest.mark.needs_data("omniglot")
def test_omniglot_jobs_and_their_seed_summary(tmp_path, capsys):
    assert main(["sweep", str(REPO / "configs/omniglot/5w1s.yaml"), "--local", "fewshot.methods=[protonet]",
                 "fewshot.seeds=[0,1]", "fewshot.meta_iterations=2", "fewshot.test_episodes=4",
                 "fewshot.val_every=0", f"experiment.storage={tmp_path}", "--name", "omni"]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, "report", str(tmp_path / "omni"))
    assert code == 0, err
    res = json.loads((tmp_path / "omni/main/results.json").read_text())
    for seed in (0, 1):
        job = res["jobs"][f"5w1s-protonet-s{seed}"]
        (row,) = _rows(out, f"5w1s-protonet-s{seed}")
        assert row[4] == f"{100 * job['accuracy']:.2f} ± {100 * job['ci95']:.2f}" and row[5] == "4"
    summary = res["summary"]["5w1s-protonet"]
    (row,) = _rows(out, "5w1s-protonet |")
    assert row == ["5w1s-protonet", "0, 1", f"{100 * summary['accuracy_mean']:.2f} ± {100 * summary['accuracy_std']:.2f}"]


@pytest.mark.slow
@pytest.mark.needs_data("mnist")
def test_mnist_rare_jobs(tmp_path, capsys):
    assert main(["run", str(REPO / "configs/mnist_rare.yaml"), "--local", "experiment.iterations=4",
                 "rare.period=2", "rare.test_every=2", "rare.test_images=10", f"experiment.storage={tmp_path}",
                 "experiment.run_name=mn"]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, "report", str(tmp_path))
    assert code == 0, err
    res = json.loads((tmp_path / "mnist_rare/mn/results.json").read_text())
    for method in ("proposed", "baseline"):
        job = res["jobs"][method]
        (row,) = _rows(out, f"{method} |")
        assert row[1:4] == ["4", "1", f"{100 * job['rare_test_accuracy']:.2f}"]
        assert row[5] == f"{job['rare_test_mean_rank']:.4g}" and row[6] == f"{job['oc_true_norm_ratio']:.4g}"
