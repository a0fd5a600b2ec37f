"""``sharedsg bench learner``: steps/s of the learners, ``model.impl`` reference vs fast side by side.

Cases (each timed for both implementations in interleaved rounds of one run, so the two
columns see the same machine load; medians over the rounds, and the median of the per-round
fast / reference ratios):

- ``trajectory``: full stream steps of the trajectory NMN (forward, both paths, Adam) plus the
  SG update, as in ``--local``; batch 16 and 32, ``bp_only`` and ``sum``;
- ``sg_update``: the SG learner's Eq. 11 update on one push of trajectory targets (batch 32);
- ``fewshot``: meta-training episodes/s of the 5-way 1-shot methods side by side (the NMN
  memory learner, proposed and baseline; MAML; the prototypical network), each with its own
  meta-batch, on random images of Omniglot's shape (timing only): :mod:`sharedsg.bench.fewshot`;
  and, reference vs fast, the proposed NMN's meta-update in each of ``--fewshot-settings``
  (the two differ in how the fast step of Eq. 10 is computed, ``learn/fewshot.py``; the
  baseline has no fast step, so the same code runs for both).

FLOP/s: the floating-point operations of one step counted by ``torch.utils.flop_counter``
(matmuls, convolutions and oneDNN's fused LSTM layers; the reference implementation's count,
i.e. the model's work; elementwise operations are not counted), times
steps/s, against the machine's measured fp32 matmul rate (a 512 x 512 matmul, same threads).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch
from torch.utils.flop_counter import FlopCounterMode

from sharedsg.bench.fewshot import fewshot_episodes_per_s, parse_setting, proposed_step
from sharedsg.config import load_config
from sharedsg.data.batch import Batch
from sharedsg.harness.endpoint import LocalEndpoint
from sharedsg.harness.stream import Stream
from sharedsg.learn.sg import SGLearner
from sharedsg.learn.stream import StreamLearner

IMPLS = ("reference", "fast")
# configs/omniglot/5w1s.yaml's model and meta-batches (configs/ is not part of the installed package)
FEWSHOT_5W1S = ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification", "model.output_dim=5",
                "fewshot.ways=5", "fewshot.shots=1", "fewshot.meta_batch=16", "fewshot.meta_batches={maml: 16, protonet: 1}", "fewshot.maml_order=2"]
Step = Callable[[], None]


def _setting(setting: str) -> List[str]:
    """Overrides of FEWSHOT_5W1S for ``<ways>w<shots>s`` (its meta-batch and queries stay)."""
    ways, shots = parse_setting(setting)
    return [f"fewshot.ways={ways}", f"fewshot.shots={shots}", f"model.output_dim={ways}"]


def _trajectory_batch(cfg, batch_size: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    x = torch.cumsum(torch.randn(batch_size, cfg.data.obs_len, 2, generator=g) * 0.01, dim=1)
    y = x[:, -1:] + torch.cumsum(torch.randn(batch_size, cfg.data.pred_len, 2, generator=g) * 0.01, dim=1)
    return Batch(x, y)


def trajectory_step(overrides: List[str], impl: str, mixing: str, batch_size: int) -> Step:
    """One stream step and its SG exchange (the SG update and weight refresh), as ``--local`` runs them."""
    cfg = load_config(None, overrides + [f"learner.mixing={mixing}", f"model.impl={impl}"])
    stream = Stream(cfg, next(iter(cfg.streams)))
    stream.join(LocalEndpoint(SGLearner(cfg.model, cfg.sg)))
    batch = _trajectory_batch(cfg, batch_size)

    def step() -> None:
        stream.train(batch)
    return step


def sg_update_step(overrides: List[str], impl: str, batch_size: int = 32) -> Step:
    cfg = load_config(None, overrides + [f"model.impl={impl}"])
    stream = StreamLearner(cfg.model, cfg.learner, cfg.sg, seed=0)
    sg = SGLearner(cfg.model, cfg.sg)
    targets = stream.step(_trajectory_batch(cfg, batch_size)).targets

    def step() -> None:
        sg.update([targets])
    return step


def matmul_flops_per_s(n: int = 512, repeats: int = 20) -> float:
    """The machine's fp32 matmul rate: best of 5 timings of ``repeats`` n x n matmuls."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n ** 3 / best


def _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    """One LSTM layer over a sequence (oneDNN's fused kernel, which flop_counter does not know):
    2 * rows * 4H * (in + H) for the gate matmuls."""
    rows = 1
    for d in input_shape[:-1]:
        rows *= d
    return 2 * rows * w_ih_shape[0] * (w_ih_shape[1] + w_hh_shape[1])


def _rnn_layer_backward_flops(*args, out_shape=None, **kwargs) -> int:
    """Its backward: the input and the weight gradients, twice the forward's matmuls."""
    return 2 * _rnn_layer_flops(*args[:3])


RNN_FLOPS = {torch.ops.aten.mkldnn_rnn_layer: _rnn_layer_flops,
             torch.ops.aten.mkldnn_rnn_layer_backward: _rnn_layer_backward_flops}


def counted_flops(step: Step) -> int:
    with FlopCounterMode(display=False, custom_mapping=RNN_FLOPS) as counter:
        step()
    return int(counter.get_total_flops())


def _interleaved(cases: Dict[str, Dict[str, Step]], rounds: int, steps: int) -> Dict[str, Dict[str, List[float]]]:
    """steps/s of every (case, impl) per round; the implementations of a case run back to back."""
    for impls in cases.values():
        for step in impls.values():
            step(), step()
    rates: Dict[str, Dict[str, List[float]]] = {c: {i: [] for i in impls} for c, impls in cases.items()}
    for r in range(rounds):
        for case, impls in cases.items():
            order = list(impls) if r % 2 == 0 else list(impls)[::-1]
            for impl in order:
                start = time.perf_counter()
                for _ in range(steps):
                    impls[impl]()
                rates[case][impl].append(steps / (time.perf_counter() - start))
    return rates


def run_learner_bench(args: argparse.Namespace) -> Dict[str, object]:
    torch.set_num_threads(args.threads)
    overrides = list(args.overrides)
    wanted = set(args.cases)
    cases: Dict[str, Dict[str, Step]] = {}
    if "trajectory" in wanted:
        for b in args.batch_sizes:
            for mixing in ("bp_only", "sum"):
                cases[f"trajectory/{mixing}/b{b}"] = {i: trajectory_step(overrides, i, mixing, b) for i in IMPLS}
    if "sg_update" in wanted:
        cases["sg_update/b32"] = {i: sg_update_step(overrides, i) for i in IMPLS}
    if "fewshot" in wanted:
        for setting in args.fewshot_settings.split(","):
            cases[f"fewshot_proposed/{setting}"] = {
                i: proposed_step(load_config(None, FEWSHOT_5W1S + _setting(setting) + overrides + [f"model.impl={i}"]),
                                 setting)
                for i in IMPLS}
    peak = matmul_flops_per_s()
    rates = _interleaved(cases, args.rounds, args.steps)
    out: Dict[str, object] = {"threads": args.threads, "rounds": args.rounds, "steps_per_round": args.steps,
                              "matmul_gflop_per_s": round(peak / 1e9, 2)}
    for case, per_impl in rates.items():
        flops = counted_flops(cases[case]["reference"])
        row: Dict[str, object] = {"flop_per_step": flops}
        for impl, values in per_impl.items():
            med = statistics.median(values)
            row[f"{impl}_steps_per_s"] = round(med, 3)
            row[f"{impl}_gflop_per_s"] = round(flops * med / 1e9, 3)
            row[f"{impl}_fraction_of_matmul_peak"] = round(flops * med / peak, 4)
        ratios = [f / r for f, r in zip(per_impl["fast"], per_impl["reference"])]
        row["fast_over_reference"] = round(statistics.median(ratios), 3)
        row["fast_over_reference_rounds"] = [round(v, 3) for v in ratios]
        out[case] = row
    if "fewshot" in wanted:
        fewshot = load_config(None, FEWSHOT_5W1S + overrides)
        out["fewshot/5w1s"] = fewshot_episodes_per_s(fewshot, 5, 1, steps=args.steps)
    cfg = load_config(None, overrides)
    out["config"] = {"obs_len": cfg.data.obs_len, "slots": cfg.model.slots, "slot_width": cfg.model.slot_width,
                     "encoder_hidden": cfg.model.encoder_hidden, "sg_kind": cfg.sg.kind, "sg_hidden": cfg.sg.hidden,
                     "fast_path": cfg.learner.fast_path}
    return out
