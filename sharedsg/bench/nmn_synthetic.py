"""``sharedsg bench nmn-synthetic``: does the few-shot NMN memory learner leave chance on a
controlled task, per input-controller / output-controller form (docs/results/fewshot_nmn.md)?

The task replaces f^E's features by synthetic ones of the same width and scale: every episode
draws N fresh class prototypes p_n ~ N(0, I_D) (D = 576, the conv encoder's width); an item of
class n is ``mean + std * (common * u + p_n + noise * e) / sqrt(common^2 + 1 + noise^2)``,
e ~ N(0, I_D) fresh per item, u ~ N(0, I_D) one pattern shared by every item of a run (``--common``,
default 0: none), so that the features' mean and std match f^E's at initialisation on Omniglot
(0.91 and 0.80, docs/diagnostics/fewshot_ic_saturation.py). With ``--common`` and ``--noise`` the
task can also take Omniglot's structure: a part common to every class that a LayerNorm does not
remove (its classes' features keep a cosine of 0.35 after it), and items of a class that are not
much closer to each other than to the other classes (docs/diagnostics/fewshot_retrieval_chain.py).
Solving an episode needs the memory (its prototypes are new). The features go through
:class:`~sharedsg.model.fewshot.FewShotNMN`'s support and query passes (Eq. 2-8, the encoder
unused) and the baseline's meta-update: Adam (``fewshot.meta_lr``) on the query cross-entropy (with
``fewshot.step_loss``, MANN's per-step loss: and every support step's prediction), B episodes
(``fewshot.meta_batch``) per step. Every variant of a seed starts from the same weights
(FewShotNMN's paired draws) and sees the same episodes.

Each finished (variant, seed) run prints its curve on stderr. Reported per variant and seed: the
accuracy on ``--eval-batches`` batches of held-out episodes (the same for every variant) every
``--eval-every`` steps, and the first step at which it reaches ``--leave`` (default 0.4: chance is
1/N); per variant the seeds' median of that step and the mean final accuracy.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig

from sharedsg.config import load_config
from sharedsg.learn.fewshot import episode_loss
from sharedsg.model.fewshot import FewShotNMN

FEATURE_MEAN, FEATURE_STD = 0.91, 0.80  # f^E's output at initialisation on Omniglot 5w1s training episodes


def common_pattern(dim: int, seed: int) -> torch.Tensor:
    """u ~ N(0, I_D): the pattern every item of a run shares (the same for every variant of a seed)."""
    return torch.randn(dim, generator=torch.Generator().manual_seed(20_000 + seed))


def synthetic_batch(batch: int, ways: int, queries: int, dim: int, noise: float,
                    g: torch.Generator, common: float = 0.0,
                    pattern: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """B episodes of N-way 1-shot synthetic features: support (B, N, D), (B, N); queries (B, N*Q, D), (B, N*Q);
    ``common`` times ``pattern`` (D,) added to every item."""
    protos = torch.randn(batch, ways, dim, generator=g)
    sy = torch.stack([torch.randperm(ways, generator=g) for _ in range(batch)])
    qy = torch.stack([torch.arange(ways).repeat_interleave(queries)[torch.randperm(ways * queries, generator=g)]
                      for _ in range(batch)])

    def items(labels: torch.Tensor) -> torch.Tensor:
        p = torch.gather(protos, 1, labels.unsqueeze(-1).expand(-1, -1, dim))
        x = p + noise * torch.randn(p.shape, generator=g)
        if common:
            x = x + common * pattern
        x = x / math.sqrt(common ** 2 + 1 + noise ** 2)
        return FEATURE_MEAN + FEATURE_STD * x

    return {"sf": items(sy), "sy": sy, "qf": items(qy), "qy": qy}


def logits(model: FewShotNMN, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Query logits (B, Q, N) of synthetic features through Eq. 2-8 (the IC's feature input as ``model.encode``'s)."""
    return model.queries(model.support(model.features(batch["sf"]), batch["sy"]), model.features(batch["qf"]))


def accuracy(model: FewShotNMN, batches: List[Dict[str, torch.Tensor]]) -> float:
    with torch.no_grad():
        return float(torch.stack([(logits(model, b).argmax(-1) == b["qy"]).float().mean() for b in batches]).mean())


def train_variant(cfg: DictConfig, variant: str, seed: int, steps: int, eval_every: int, eval_batches: int,
                  noise: float, ways: int = 5, common: float = 0.0) -> List[Tuple[int, float]]:
    """[(step, held-out accuracy)] of one variant ('ic_input:oc_input') and seed, from step 0 to ``steps``."""
    ic_input, oc_input = variant.split(":")
    fs = cfg.fewshot
    model = FewShotNMN(cfg.model, ways, str(fs.label_input), seed, str(fs.write_input), oc_input, ic_input)
    dim = model.encoder.out_dim
    params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    opt = torch.optim.Adam(params, lr=float(fs.meta_lr))
    queries, batch = int(fs.queries), int(fs.meta_batch)
    held = torch.Generator().manual_seed(10_000 + seed)
    pattern = common_pattern(dim, seed)
    evals = [synthetic_batch(batch, ways, queries, dim, noise, held, common, pattern) for _ in range(eval_batches)]
    g = torch.Generator().manual_seed(seed)
    curve = [(0, accuracy(model, evals))]
    for step in range(1, steps + 1):
        b = synthetic_batch(batch, ways, queries, dim, noise, g, common, pattern)
        sp = model.support(model.features(b["sf"]), b["sy"])
        loss = episode_loss(model, sp, model.queries(sp, model.features(b["qf"])), b, bool(fs.step_loss)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            curve.append((step, accuracy(model, evals)))
    return curve


def first_at(curve: List[Tuple[int, float]], level: float) -> Optional[int]:
    """The first evaluated step whose accuracy is >= ``level`` (None: never)."""
    return next((s for s, a in curve if a >= level), None)


def _median_step(steps: List[Optional[int]]) -> Optional[float]:
    """The median over seeds of the step that left chance, a seed that never did counting as the
    largest (None when that median is such a seed)."""
    m = statistics.median([x if x is not None else math.inf for x in steps])
    return None if math.isinf(m) else m


def run_nmn_synthetic_bench(args: argparse.Namespace) -> Dict[str, object]:
    torch.set_num_threads(args.threads)
    cfg = load_config(None, ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification",
                             "model.output_dim=5", "fewshot.meta_batch=16", "fewshot.meta_lr=0.001"] + list(args.overrides))
    out: Dict[str, object] = {"steps": args.steps, "seeds": args.seeds, "noise": args.noise, "common": args.common,
                              "leave": args.leave, "meta_batch": int(cfg.fewshot.meta_batch),
                              "meta_lr": float(cfg.fewshot.meta_lr)}
    for variant in args.variants:
        t0 = time.process_time()
        curves = {}
        for s in args.seeds:
            curves[s] = train_variant(cfg, variant, s, args.steps, args.eval_every, args.eval_batches, args.noise,
                                       common=args.common)
            print(f"{variant} seed {s}: {curves[s]}", file=sys.stderr, flush=True)  # progress, one line per run
        left = [first_at(c, args.leave) for c in curves.values()]
        finals = [c[-1][1] for c in curves.values()]
        out[variant] = {"left_chance_at": left, "left_in": sum(x is not None for x in left),
                        "median_left_at": _median_step(left),
                        "final_accuracy": [round(a, 3) for a in finals],
                        "final_mean": round(statistics.mean(finals), 3),
                        "curves": {str(s): [[st, round(a, 3)] for st, a in c] for s, c in curves.items()},
                        "cpu_s": round(time.process_time() - t0, 1)}
    return out
