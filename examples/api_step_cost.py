"""What the public API costs per training step of a small MLP on MNIST-sized batches (docs/api.md).

Interleaved rounds of: back-propagation alone; the same step with the hidden layer marked
(in-process group: predict, send, one Eq. 11 update); and, with --ray, marked through a group of
an SG service on a local Ray (the update runs in the group's actor). Median ms per step.

    python examples/api_step_cost.py [--rounds 5] [--steps 50] [--ray]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time

import torch
from torch import nn
from torch.nn import functional as F

import sharedsg


def step_ms(sg, steps: int, batch: int = 100) -> float:
    torch.manual_seed(0)
    lower, upper = nn.Sequential(nn.Linear(784, 256), nn.ReLU()), nn.Sequential(nn.Linear(256, 256), nn.ReLU(),
                                                                                nn.Linear(256, 10))
    opt = torch.optim.Adam([*lower.parameters(), *upper.parameters()], 1e-3)
    x, y = torch.rand(batch, 784), torch.randint(0, 10, (batch,))
    t0 = time.perf_counter()
    for _ in range(steps):
        h = lower(x)
        if sg is not None:
            h = sg.mark("h", h, F.one_hot(y, 10).float())
        opt.zero_grad()
        F.cross_entropy(upper(h), y).backward()
        opt.step()
    if sg is not None:
        sg.flush()
    return 1e3 * (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--ray", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    arms = {"bp": lambda: None,
            "in-process": lambda: sharedsg.connect(sharedsg.SGGroup(kind="mlp", hidden=256), "m", {"h": 256}, 10)}
    if args.ray:
        import ray

        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        storage = tempfile.TemporaryDirectory(prefix="sharedsg-api-cost-")  # the group's checkpoints
        service = sharedsg.serve("cost", storage.name, kind="mlp", hidden=256)  # lives while held
        arms["ray"] = lambda: sharedsg.connect("cost/g", f"m{time.monotonic_ns()}", {"h": 256}, 10)
    times = {a: [] for a in arms}
    for _ in range(args.rounds):
        for arm, make in arms.items():
            times[arm].append(step_ms(make(), args.steps))
    if args.ray:
        service.stop()
    for arm, ts in times.items():
        print(f"{arm:10s} {statistics.median(ts):6.2f} ms/step (median of {len(ts)} rounds of {args.steps} steps)")


if __name__ == "__main__":
    main()
