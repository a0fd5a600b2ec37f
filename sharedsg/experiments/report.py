"""Markdown tables from the ``results.json`` files under a run folder (``sharedsg report``).

Every experiment writes one ``results.json`` where its run ends: the stream experiments
(``knowledge_sharing``, ``metatest``, ``train``) in their run folder, the job kinds (Omniglot
``fewshot``, ``mnist_rare``) in their sweep folder with one entry per job under ``jobs``. This
module reads them back and prints one table per experiment, so the tables in docs/results/ are
regenerated from a run folder instead of typed. It imports neither torch nor ray.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

from sharedsg.config import MetaTestConfig
from sharedsg.errors import UserError

RESULTS = "results.json"
Results = Dict[str, Any]


def find_results(root: Path) -> List[Path]:
    """Every ``results.json`` under ``root`` (itself included), in path order."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"report: {root}: no such folder; give a run folder, e.g. runs/knowledge_sharing/<run>")
    found = sorted(root.rglob(RESULTS))
    if not found:
        raise UserError(f"report: no {RESULTS} under {root}; an experiment writes it when its run ends "
                        "(sharedsg run CONFIG, sharedsg sweep CONFIG...)")
    return found


def load_results(path: Path) -> Results:
    """One ``results.json``; a file that is not a JSON object is a one-line :class:`UserError`."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"report: {path} is damaged ({_reason(exc)}); run its experiment again or remove "
                        "the file") from None
    if not isinstance(results, dict):
        raise UserError(f"report: {path} is damaged (a {type(results).__name__}, not a JSON object); run its "
                        "experiment again or remove the file")
    return results


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at line {exc.lineno}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _num(x: Any) -> str:
    """A measured value with 4 significant digits; '-' where there is none."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{float(x):.4g}"


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.2f}"


def _mean_std(s: Dict[str, Any]) -> str:
    return f"{_num(s['mean'])} ± {_num(s['std'])}"


def _per_seed(s: Dict[str, Any]) -> str:
    return " / ".join(_num(v) for v in s["values"])


def _table(header: Sequence[str], rows: List[Sequence[str]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def knowledge_sharing_table(r: Results) -> List[str]:
    """Sec. 5.2: held-out MSE per stream and SG arm, final and area under the curve, over seeds."""
    lines = [f"Knowledge sharing (Sec. 5.2): {r['metric']}; seeds {r['seeds']}, {r['iterations']} iterations, "
             f"{r['wall_time_s']:.0f} s wall", ""]
    rows = [(role, arm, _mean_std(arms[arm]["final"]), _per_seed(arms[arm]["final"]), _mean_std(arms[arm]["auc"]))
            for role, arms in sorted(r["mse"].items(), key=lambda kv: kv[0] != "pedestrian")  # the claim's stream first
            for arm in sorted(arms, key=lambda a: a != "shared")]
    return lines + _table(("stream", "SG", "final MSE (mean ± std)", "per seed", "area under the curve"), rows)


def metatest_table(r: Results) -> List[str]:
    """Sec. 4.2: held-out pedestrian MSE per method before and after adaptation, over seeds."""
    lines = [f"Trajectory meta-test (Sec. 4.2): {r['metric']}; seeds {r['seeds']}, {r['pretrain_iterations']} "
             f"pre-training iterations, {r['adapt_iterations']} adaptation steps on {r['adapt_examples']} "
             f"windows, {r['wall_time_s']:.0f} s wall", ""]
    rows = [(m, _num(s["before_adaptation"]["mean"]), _mean_std(s["final"]), _per_seed(s["final"]),
             _mean_std(s["auc"]), f"{s['wall_time_s']['mean']:.0f}") for m, s in sorted(r["mse"].items(), key=_method_order)]
    lines += _table(("method", "MSE before adaptation", "final MSE (mean ± std)", "per seed",
                     "area under the curve", "job wall time (s)"), rows)
    if "proposed_vs_baseline_final_reduction" in r:
        red = 100 * float(r["proposed_vs_baseline_final_reduction"])
        lines += ["", f"Proposed vs baseline NMN, final MSE: {abs(red):.1f}% {'lower' if red >= 0 else 'higher'} "
                      "(paper: 35% lower)."]
    return lines


def _method_order(item: tuple) -> tuple:
    """The meta-test's methods in the config's order (proposed, baseline, MAML, LSTM encoder-decoder)."""
    order = MetaTestConfig().methods
    return (order.index(item[0]) if item[0] in order else len(order), item[0])


def train_table(r: Results) -> List[str]:
    """``experiment.kind=train``: each stream's steps and last held-out loss."""
    lines = [f"Training run `{r['experiment']}`: {r['iterations']} iterations, {r['wall_time_s']:.0f} s wall", ""]
    rows = [(name, s["steps"], _num(s["final_loss_eval"])) for name, s in sorted(r["streams"].items())]
    return lines + _table(("stream", "steps", "final held-out loss"), rows)


def fewshot_table(r: Results, jobs: Dict[str, Results]) -> List[str]:
    """Omniglot (Sec. 4.1, Table 1): every job's test accuracy, then mean ± std over training seeds."""
    lines = ["Omniglot few-shot (Sec. 4.1, Table 1): accuracy (%) on the held-out test episodes, "
             "± the 95% CI over episodes", ""]
    rows = [(name, j["setting"], j["method"], j["seed"],
             f"{_pct(j['accuracy'])} ± {_pct(j['ci95'])}" if j["test_episodes"] else "not tested",
             j["test_episodes"], j["train_episodes"], j["meta_iterations"], f"{j['train_cpu_s']:.0f}",
             f"{j['train_wall_s']:.0f}") for name, j in sorted(jobs.items())]
    lines += _table(("job", "setting", "method", "seed", "test accuracy", "test episodes", "training episodes",
                     "meta-iterations", "training CPU s", "training wall s"), rows)
    summary = {k: v for k, v in r.get("summary", {}).items() if any(
        f"{j['setting']}-{j['method']}" == k for j in jobs.values())}
    if summary:
        rows = [(key, ", ".join(str(s) for s in v["seeds"]),
                 f"{_pct(v['accuracy_mean'])} ± {_pct(v['accuracy_std'])}" if v["accuracy_std"] is not None
                 else f"{_pct(v['accuracy_mean'])} (one seed)")
                for key, v in sorted(summary.items())]
        lines += ["", "Over training seeds (mean ± std of the seeds' accuracies, %):", ""]
        lines += _table(("setting-method", "seeds", "accuracy"), rows)
    return lines


def mnist_rare_table(r: Results, jobs: Dict[str, Results]) -> List[str]:
    """Sec. 5.1: the rare classes 5-9 on unseen test images, and the output controller's gradient spikes."""
    seeds = sorted({c["experiment"]["seed"] for c in r.get("configs", []) if c["experiment"]["kind"] == "mnist_rare"})
    lines = [f"MNIST rare classes (Sec. 5.1), seed {', '.join(str(s) for s in seeds) or '-'}: the unseen test "
             "images of classes 5-9 as queries", ""]
    rows = [(name, j["iterations"], len(j["rare_iterations"]), _pct(j["rare_test_accuracy"]),
             _pct(j["rare_test_accuracy_among_rare"]), _num(j["rare_test_mean_rank"]),
             _num(j["oc_true_norm_ratio"]), _num(j["oc_synthetic_norm_ratio"]), f"{j['train_wall_s']:.0f}")
            for name, j in sorted(jobs.items())]
    return lines + _table(("method", "iterations", "rare batches", "10-way accuracy (%)",
                           "accuracy among 5-9 (%)", "mean rank (1 = top)", "OC true norm, rare / other",
                           "OC synthetic norm, rare / other", "training wall s"), rows)


STREAM_TABLES: Dict[str, Callable[[Results], List[str]]] = {
    "knowledge_sharing": knowledge_sharing_table,
    "metatest": metatest_table,
}


def tables(r: Results) -> List[str]:
    """The markdown lines for one ``results.json`` (one table per experiment in it)."""
    if r.get("kind") in STREAM_TABLES:
        return STREAM_TABLES[r["kind"]](r)
    if "jobs" in r:
        jobs = r["jobs"]
        fewshot = {n: j for n, j in jobs.items() if "setting" in j}
        rare = {n: j for n, j in jobs.items() if "rare_test_accuracy" in j}
        if len(fewshot) + len(rare) != len(jobs):
            raise KeyError("a job that is neither an Omniglot nor an MNIST one")
        out: List[str] = []
        if fewshot:
            out += fewshot_table(r, fewshot)
        if rare:
            out += ([""] if out else []) + mnist_rare_table(r, rare)
        return out or ["No finished job yet."]
    if "streams" in r:
        return train_table(r)
    raise KeyError("no 'kind', 'jobs' or 'streams'")


def report(root: Path) -> str:
    """The markdown report of every ``results.json`` under ``root``: a heading per file, then its tables."""
    root = Path(root)
    parts: List[str] = []
    for path in find_results(root):
        r = load_results(path)
        try:
            body = tables(r)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise UserError(f"report: {path} is damaged (not a sharedsg results file: {_reason(exc)}); run its "
                            "experiment again or remove the file") from None
        where = path.parent.relative_to(root).as_posix()
        parts.append("\n".join([f"## {root.as_posix() if where == '.' else f'{root.as_posix()}/{where}'}", ""] + body))
    return "\n\n".join(parts) + "\n"
