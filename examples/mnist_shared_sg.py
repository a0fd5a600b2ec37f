"""Two models on MNIST, each in its own Ray actor, share one SG group for a hidden layer (docs/api.md).

Per seed, three arms: back-propagation only; own SG (each model DNI-decoupled through a group of
its own); shared SG (both models feeding one group). Test accuracy and the SG fit side by side,
as a table (table.md, results.json) and a plot (mnist_shared_sg.png) in --out (the SG service's
checkpoints in --out/service, replaced on every run):

    python examples/mnist_shared_sg.py [--out DIR] [--seeds 0 1 2] [--steps 400]

Attach one model to a group of a running attachable experiment (a group the experiment does not
have is started for it; a group whose dimensions differ refuses the model, exit 2):

    python examples/mnist_shared_sg.py --attach EXPERIMENT/GROUP [--address HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn
from torch.nn import functional as F

import sharedsg
from sharedsg.config import data_root
from sharedsg.data.mnist import load_mnist
from sharedsg.errors import UserError

HIDDEN, CLASSES = 256, 10
SG = dict(kind="mlp", hidden=HIDDEN, policy="exact")  # the group's SG settings (sharedsg.config.SGConfig)
ARMS = ("bp", "own", "shared")


def build(kind: str) -> nn.ModuleDict:
    """``lower`` (trained through the synthetic gradient at h in the SG arms) and ``upper``; h is 256 wide."""
    if kind == "mlp":  # 784 - 256 (h) - 256 - 10
        lower = nn.Sequential(nn.Flatten(), nn.Linear(784, HIDDEN), nn.ReLU())
        upper = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))
    else:  # a small CNN: two 5x5 convolutions, stride 2 (16 x 4 x 4 = 256 = h), then 10
        lower = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 5, stride=2), nn.ReLU(),
                              nn.Flatten())
        upper = nn.Linear(HIDDEN, CLASSES)
    return nn.ModuleDict({"lower": lower, "upper": upper})


def train(kind: str, seed: int, group: Optional[str], steps: int, batch: int, name: str,
          address: Optional[str] = None) -> Dict[str, Any]:
    """One model: ``steps`` Adam steps on MNIST train (DNI-decoupled at h when ``group`` is given); test accuracy."""
    torch.manual_seed(seed)
    train_set, test_set = load_mnist(data_root() / "mnist", "train"), load_mnist(data_root() / "mnist", "test")
    x = torch.tensor(train_set.images).unsqueeze(1)  # uint8 (a writable copy); a batch at a time in float
    y = torch.tensor(train_set.labels).long()
    net = build(kind)
    sg = sharedsg.connect(group, name, {"h": HIDDEN}, CLASSES, address=address, mode="decoupled") if group else None
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    t0 = time.perf_counter()
    order = torch.randperm(len(y))
    for step in range(steps):
        idx = order[(step * batch) % len(y):][:batch]
        h = net["lower"](x[idx].float().div_(255))
        if sg is not None:
            h = sg.mark("h", h, F.one_hot(y[idx], CLASSES).float())
        loss = F.cross_entropy(net["upper"](h), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    step_ms = 1e3 * (time.perf_counter() - t0) / steps
    out: Dict[str, Any] = {"model": kind, "seed": seed, "step_ms": step_ms}
    if sg is not None:
        out.update(sg.fit()["h"])
        sg.detach()
    with torch.no_grad():
        tx = torch.tensor(test_set.images).float().div_(255).unsqueeze(1)
        out["test_acc"] = float((net["upper"](net["lower"](tx)).argmax(1) == torch.tensor(test_set.labels)).float().mean())
    return out


def compare(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Every seed's three arms, the two models of an arm in parallel, each in its own Ray actor."""
    import ray

    from sharedsg.runtime.cluster.connection import token_auth_for_embedded_ray

    token_auth_for_embedded_ray()  # as `sharedsg run` starts its Ray: token on, without Ray's warning
    # logical CPUs: the two model actors and the three groups of a seed (a group actor takes one)
    ray.init(address="local", num_cpus=5, include_dashboard=False, logging_level=logging.WARNING,
             object_store_memory=100 * 1024 * 1024)
    Model = ray.remote(num_cpus=1)(_Model)
    models = {kind: Model.remote() for kind in ("mlp", "cnn")}
    rows = []
    shutil.rmtree(args.out / "service", ignore_errors=True)  # a service restores its groups from there: start afresh
    for seed in args.seeds:
        experiment = f"mnist-shared-sg-{seed}"
        service = sharedsg.serve(experiment, str(args.out / "service" / f"seed{seed}"), **SG, lr=args.sg_lr,
                                 target_scaling=args.sg_scaling)
        for arm in ARMS:
            groups = {"bp": {}, "own": {k: f"{experiment}/own-{k}" for k in models},
                      "shared": {k: f"{experiment}/shared" for k in models}}[arm]
            runs = [m.run.remote(kind, seed, groups.get(kind), args.steps, args.batch, f"{kind}-{arm}")
                    for kind, m in models.items()]
            rows += [dict(r, arm=arm) for r in ray.get(runs)]
            print(" ".join(f"seed {seed} {arm:6s} {r['model']}: {100 * r['test_acc']:.2f}%" for r in rows[-2:]),
                  flush=True)
        service.stop()
    ray.shutdown()
    return rows


class _Model:
    """A Ray actor that trains one model per call (so it boots torch once for every seed and arm)."""

    def __init__(self) -> None:
        torch.set_num_threads(1)

    def run(self, *args: Any) -> Dict[str, Any]:
        return train(*args)


def write(rows: List[Dict[str, Any]], out: Path) -> str:
    """results.json, table.md and mnist_shared_sg.png; the table."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    lines = ["| arm | model | test accuracy % (per seed) | mean | SG cosine | SG rel. MSE | SG norm ratio | ms/step |",
             "|---|---|---|---|---|---|---|---|"]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for i, (arm, kind) in enumerate((a, k) for a in ARMS for k in ("mlp", "cnn")):
        sel = [r for r in rows if r["arm"] == arm and r["model"] == kind]
        accs = [100 * r["test_acc"] for r in sel]
        fit = [sum(r[k] for r in sel) / len(sel) if arm != "bp" else float("nan")
               for k in ("cosine", "rel_mse", "norm_ratio")]
        lines.append(f"| {arm} | {kind} | {', '.join(f'{a:.2f}' for a in accs)} | {sum(accs) / len(accs):.2f} | "
                     + " | ".join("-" if arm == "bp" else f"{v:.3f}" for v in fit)
                     + f" | {sum(r['step_ms'] for r in sel) / len(sel):.1f} |")
        ax[0].scatter([i] * len(accs), accs, color=f"C{ARMS.index(arm)}")
        if arm != "bp":
            ax[1].scatter([i] * len(sel), [r["cosine"] for r in sel], color=f"C{ARMS.index(arm)}")
    labels = [f"{a}\n{k}" for a in ARMS for k in ("mlp", "cnn")]
    for a, title in zip(ax, ("MNIST test accuracy (%)", "SG cosine(s, g), last 50 steps")):
        a.set_xticks(range(len(labels)), labels)
        a.set_title(title)
    fig.tight_layout()
    fig.savefig(out / "mnist_shared_sg.png", dpi=100)
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    return table


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("mnist_shared_sg_out"), help="folder for the table and plot")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=400, help="Adam steps per model and arm")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--sg-lr", type=float, default=1e-3,
                   help="the SG group's Adam rate (sg.lr), chosen by the SG fit (relative MSE, docs/api.md); "
                        "the NMN default, 9e-3, fits the NMN controllers' targets")
    p.add_argument("--sg-scaling", choices=("rms", "none"), default="none",
                   help="sg.target_scaling of the SG group; none fits these targets better (docs/api.md)")
    p.add_argument("--attach", metavar="EXPERIMENT/GROUP", help="train one MLP through a running experiment's group")
    p.add_argument("--address", help="the Ray cluster of --attach (default: the local Ray of attachable experiments)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if args.steps < 1 or args.batch < 1:
            raise UserError("--steps and --batch must be at least 1")
        load_mnist(data_root() / "mnist", "train")  # a missing dataset is one line, before Ray starts
        if args.attach:
            r = train("mlp", args.seeds[0], args.attach, args.steps, args.batch, "mnist-mlp", args.address)
            print(json.dumps(r))
            return 0
        print(write(compare(args), args.out))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
