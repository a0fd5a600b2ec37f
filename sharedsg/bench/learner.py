"""``sharedsg bench learner``: training steps per second of the trajectory NMN, bp_only vs sum.

The ratio sum / bp_only is the cost of the fast path (SG prediction plus pushing the
synthetic gradients back through the three controllers).
"""

from __future__ import annotations

import argparse
import time
from typing import Dict

import torch

from sharedsg.config import load_config
from sharedsg.data.batch import Batch
from sharedsg.learn.sg import SGLearner
from sharedsg.learn.stream import StreamLearner


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=30, help="timed steps per mode (after 3 warm-up steps)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 = one core, as a Ray actor gets)")
    p.add_argument("overrides", nargs="*", help="config key=value overrides")


def _batch(cfg, batch_size: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    x = torch.cumsum(torch.randn(batch_size, cfg.data.obs_len, 2, generator=g) * 0.01, dim=1)
    y = x[:, -1:] + torch.cumsum(torch.randn(batch_size, cfg.data.pred_len, 2, generator=g) * 0.01, dim=1)
    return Batch(x, y)


def steps_per_s(cfg, steps: int, batch_size: int) -> float:
    """Full stream steps (forward, both paths, Adam) plus the SG update, as in ``--local``."""
    learner = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    sg = SGLearner(cfg.model, cfg.sg)
    batch = _batch(cfg, batch_size)
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        result = learner.step(batch)
        sg.update([result.targets])
        learner.load_sg(sg.state())
    return steps / (time.perf_counter() - start)


def run_learner_bench(args: argparse.Namespace) -> Dict[str, object]:
    torch.set_num_threads(args.threads)
    out: Dict[str, object] = {"batch_size": args.batch_size, "threads": args.threads, "steps": args.steps}
    for mixing in ("bp_only", "sum"):
        cfg = load_config(None, list(args.overrides) + [f"learner.mixing={mixing}"])
        out[f"{mixing}_steps_per_s"] = round(steps_per_s(cfg, args.steps, args.batch_size), 3)
    out["sum_over_bp_only"] = round(out["sum_steps_per_s"] / out["bp_only_steps_per_s"], 3)
    out["config"] = {"obs_len": cfg.data.obs_len, "slots": cfg.model.slots, "slot_width": cfg.model.slot_width,
                     "encoder_hidden": cfg.model.encoder_hidden, "sg_kind": cfg.sg.kind}
    return out
