"""Figures in the manner of the paper's Fig. 4, 5, 8 and 9 (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ARM_COLOURS = {"shared": "tab:red", "separate": "tab:orange"}


def learning_curves(curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]], iterations: Sequence[int],
                    marks: Mapping[str, Sequence[int]], title: str, ylabel: str = "held-out MSE"):
    """Fig. 8: one panel per stream; per arm the mean over seeds with a min-max band; red dots at
    the first evaluation after each iteration in ``marks[stream]`` (streams without marks get none).

    curves[stream][arm] is a list (one per seed) of losses at ``iterations``.
    """
    streams = list(curves)
    fig, axes = plt.subplots(1, len(streams), figsize=(5.5 * len(streams), 4), squeeze=False)
    x = np.asarray(iterations)
    for ax, stream in zip(axes[0], streams):
        for arm, runs in curves[stream].items():
            arr = np.asarray(runs, dtype=float)
            mean = arr.mean(axis=0)
            ax.plot(x, mean, color=ARM_COLOURS.get(arm), label=f"{arm} SG")
            ax.fill_between(x, arr.min(axis=0), arr.max(axis=0), color=ARM_COLOURS.get(arm), alpha=0.2)
            if marks.get(stream):  # each update shown at the first evaluation after it
                idx = sorted({int(i) for i in np.searchsorted(x, np.asarray(marks[stream])) if i < len(x)})
                ax.scatter(x[idx], mean[idx], color="red", zorder=5, s=18)
        if marks.get(stream):
            ax.scatter([], [], color="red", s=18, label=f"{stream} update")
        ax.set_title(f"{title}: {stream}")
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.legend()
    fig.tight_layout()
    return fig


def trajectories(rows: List[Dict[str, np.ndarray]], title: str, predictions_label: Mapping[str, str]):
    """Fig. 5 / Fig. 9: observed (blue), true future (green) and each model's prediction.

    Every row is a dict with ``observed`` (T, 2), ``future`` (T, 2), ``title`` and one
    (T, 2) array per key of ``predictions_label`` (key -> legend label).
    """
    colours = ["tab:red", "tab:orange", "tab:gray", "tab:purple", "tab:brown"]
    n = len(rows)
    cols = min(n, 3)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.8 * ((n + cols - 1) // cols)),
                             squeeze=False)
    for ax, row in zip(axes.flat, rows):
        ax.plot(*row["observed"].T, color="tab:blue", marker=".", ms=3, label="observed")
        ax.plot(*row["future"].T, color="tab:green", marker=".", ms=3, label="true future")
        for (key, label), colour in zip(predictions_label.items(), colours):
            ax.plot(*row[key].T, color=colour, marker=".", ms=3, label=label)
        ax.set_title(row.get("title", ""))
        ax.set_aspect("equal", adjustable="datalim")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save(fig, path: Path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
