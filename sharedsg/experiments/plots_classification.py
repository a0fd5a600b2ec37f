"""Figures of the classification experiments (matplotlib Agg): Fig. 6 and Fig. 7 of Sec. 5.1."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sharedsg import checkpoint, storage  # noqa: E402


def _series(scalars: List[Tuple[str, int, float]]) -> Dict[str, Dict[int, float]]:
    out: Dict[str, Dict[int, float]] = {}
    for tag, step, value in scalars:
        out.setdefault(str(tag), {})[int(step)] = float(value)
    return out


def job_series(directory: Path) -> Dict[str, Dict[int, float]]:
    """The scalars a classification job keeps in its checkpoint, by tag."""
    state = checkpoint.load(Path(directory) / "checkpoint.pt")
    return _series(state["scalars"]) if state else {}


def rare_figures(out_dir: Path, job_dirs: Dict[str, Path]) -> Dict[str, str]:
    """fig6_oc_gradients.png (a: synthetic, b: back-propagated, per method, rare iterations in red)
    and fig7_rare_accuracy.png (rare-class test accuracy per method); returns their paths."""
    series = {name: job_series(d) for name, d in job_dirs.items()}
    series = {n: s for n, s in series.items() if s}
    if not series:
        return {}
    out_dir = Path(out_dir)
    paths: Dict[str, str] = {}
    names = sorted(series, key=lambda n: (n != "proposed", n))
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.2 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        s = series[name]
        rare = sorted(i for i, v in s.get("schedule/rare", {}).items() if v > 0)
        for col, (kind, title) in enumerate((("synthetic", "synthetic gradient (SG^OC)"),
                                             ("true", "back-propagated gradient"))):
            ax = axes[row][col]
            norms = s.get(f"grad_norm/oc/{kind}", {})
            steps = sorted(norms)
            ax.plot(steps, [norms[i] for i in steps], lw=0.5, color="tab:blue")
            ax.scatter(rare, [norms[i] for i in rare if i in norms], color="red", s=14, zorder=3,
                       label="rare batch (classes 5-9)")
            ax.set_title(f"{name}: output controller, {title}", fontsize=9)
            ax.set_xlabel("iteration")
            ax.set_ylabel("mean L2 norm")
            ax.set_yscale("log")
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    p = out_dir / "fig6_oc_gradients.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths["fig6"] = str(p)

    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.2), squeeze=False)
    for col, name in enumerate(names):
        s = series[name]
        acc = s.get("accuracy/rare_test", {})
        steps = sorted(acc)
        ax = axes[0][col]
        ax.plot(steps, [acc[i] for i in steps], marker=".", ms=3, lw=0.8)
        for i in sorted(i for i, v in s.get("schedule/rare", {}).items() if v > 0):
            ax.axvline(i, color="red", lw=0.4, alpha=0.5)
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}: test accuracy on unseen images of classes 5-9", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("accuracy")
    fig.tight_layout()
    p = out_dir / "fig7_rare_accuracy.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths["fig7"] = str(p)
    return paths


def fewshot_curve(path: Path, name: str, scalars: List[Tuple[str, int, float]]) -> str:
    """A few-shot job's validation accuracy (held-out characters) and training query accuracy
    against meta-iterations, so a reader sees whether the curve has flattened."""
    s = _series(scalars)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for tag, label in (("accuracy/query_train", "training episodes (query)"), ("accuracy/val", "validation episodes")):
        points = s.get(tag, {})
        steps = sorted(points)
        ax.plot(steps, [points[i] for i in steps], marker="." if tag == "accuracy/val" else None, lw=0.8, label=label)
    ax.set_ylim(0, 1)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("accuracy")
    ax.set_title(name, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()  # the job's folder may be a storage URI (s3://...): written through sharedsg.storage
    fig.savefig(png, format="png", dpi=90)
    plt.close(fig)
    return storage.write_bytes(path, png.getvalue())
