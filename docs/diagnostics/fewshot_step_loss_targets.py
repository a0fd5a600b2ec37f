"""With MANN's per-step loss (``fewshot.step_loss``), which part of a support step's SG target does
an SG predictor conditioned on (h, y) learn: the support item's own prediction, or the queries'?

    python docs/diagnostics/fewshot_step_loss_targets.py [--records 60] [--seed 0] [key=value ...]

The baseline few-shot NMN of configs/omniglot/5w1s.yaml with ``fewshot.label_input=previous
fewshot.step_loss=true`` meta-trains for ``--records`` updates of 16 real training episodes. At each
update the Eq. 11 targets of the support steps (IC and OC), g = dL/dh with L the mean over the S
support and Q query predictions, are split by linearity into the queries' part g_q (from the Q/(S+Q)
share of L that is the queries' cross-entropy) and the support steps' own part g_s = g - g_q. SG
predictors with the configured ``sg.*`` are trained on g as ``sharedsg bench sg-fit`` trains them
(the first 80% of the updates, 3 passes) and scored on the held-out 20% against g, g_s and g_q
(cosine, relative MSE, norm ratio; docs/results/sg_fit.md). Also: the share of the targets' energy,
mean(g_q^2) / mean(g^2), that is the queries'.
"""
import argparse
import json

import torch
from torch.nn import functional as F

from sharedsg.bench.sgfit import FEWSHOT_5W1S, fit, settings
from sharedsg.config import load_config
from sharedsg.experiments.omniglot import OmniglotEpisodes
from sharedsg.learn.fewshot import FewShotNMNMethod, episode_loss, stack_episodes
from sharedsg.learn.types import SGTargets
from sharedsg.model.fewshot import FAST_CONTROLLERS


def record(cfg, n: int, seed: int):
    """``n`` meta-updates of the baseline: per update (h, y, g, g_q) of the support steps."""
    torch.manual_seed(seed)
    ways, mb = int(cfg.fewshot.ways), int(cfg.fewshot.meta_batch)
    method = FewShotNMNMethod(cfg, ways, seed, fast=False)
    episodes = OmniglotEpisodes(cfg, ways, int(cfg.fewshot.shots), train_seed=seed)
    out = []
    for i in range(n):
        batch = stack_episodes([episodes.episode("train", i * mb + j) for j in range(mb)])
        logits, sp, _, _ = method.forward(batch)
        total = episode_loss(method.model, sp, logits, batch, step_loss=True)
        s_len, q_len = batch["sy"].shape[1], batch["qy"].shape[1]
        queries = F.cross_entropy(logits.reshape(-1, ways), batch["qy"].reshape(-1), reduction="none")
        queries = queries.reshape(mb, -1).mean(1) * q_len / (s_len + q_len)  # the queries' share of ``total``
        outputs = [h for c in FAST_CONTROLLERS for h in sp.h_out[c]]
        names, params = zip(*method.model.named_parameters())
        grads = torch.autograd.grad(total.sum(), list(params) + outputs, retain_graph=True)
        g_q = torch.autograd.grad(queries.sum(), outputs)
        for p, g in zip(params, grads):
            p.grad = g / mb
        method.optimizer.step()
        method.optimizer.zero_grad(set_to_none=True)

        def per_controller(flat):
            return {c: torch.stack(flat[k * s_len:(k + 1) * s_len], 1).detach() for k, c in enumerate(FAST_CONTROLLERS)}

        y = F.one_hot(batch["sy"], ways).float()
        out.append((SGTargets({c: sp.outputs(c) for c in FAST_CONTROLLERS}, y, per_controller(grads[len(params):])),
                    per_controller(g_q)))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    args, overrides = p.parse_known_args()
    torch.set_num_threads(1)
    cfg = load_config(None, FEWSHOT_5W1S + ["fewshot.label_input=previous", "fewshot.step_loss=true"] + overrides)
    recs = record(cfg, args.records, args.seed)
    cut = int(round(args.records * 0.8))
    train = [t for t, _ in recs[:cut]]
    parts = {"g": lambda t, q: t.g, "g_q": lambda t, q: q,
             "g_s": lambda t, q: {c: t.g[c] - q[c] for c in t.g}}
    out = {"records": f"{cut} train, {args.records - cut} held out",
           "query_energy_share": {c: round(float(sum(q[c].pow(2).sum() for _, q in recs)
                                                 / sum(t.g[c].pow(2).sum() for t, _ in recs)), 4)
                                  for c in FAST_CONTROLLERS}}
    chosen = settings(cfg.sg, ["configured"], ["decoder"])["configured"]
    for name, part in parts.items():
        held = [SGTargets(t.h, t.y, part(t, q)) for t, q in recs[cut:]]
        out[name] = fit(train, held, chosen, 3, args.seed)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
