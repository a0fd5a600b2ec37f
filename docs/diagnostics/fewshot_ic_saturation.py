"""How saturated the few-shot NMN's input controller is at initialisation, on real Omniglot
training episodes (5-way 1-shot, ``--batches`` batches of 16, train mode as in meta-training).

    python docs/diagnostics/fewshot_ic_saturation.py [--batches 2] [key=value ...]

For every ``fewshot.ic_input`` (and both ``fewshot.oc_input`` forms for the logits) prints the
std of the input part of the IC's gate pre-activations at the support steps, from the image
columns of weight_ih (W x) and from the label columns (W onehot), the fraction of their sum with the biases
with |pre| > 3, the mean cosine between the features of different classes, and the query
logits' spread over the queries (std over an episode's queries, per class) against over the
classes (std over the classes, per query); then the same for MANN's controller (pixels and
previous label) on the same episodes (docs/results/fewshot_nmn.md)."""
import argparse

import torch
from torch.nn import functional as F

from sharedsg.config import load_config
from sharedsg.experiments.omniglot import OmniglotEpisodes
from sharedsg.learn.fewshot import FewShotNMNMethod, stack_episodes
from sharedsg.learn.mann import MannMethod


def gate_stats(w_ih: torch.Tensor, b: torch.Tensor, x: torch.Tensor, d: int) -> dict:
    """Pre-activation statistics of an LSTM's first step (h = 0) for inputs x (..., d + N)."""
    img = x[..., :d] @ w_ih[:, :d].t()
    lab = x[..., d:] @ w_ih[:, d:].t()
    pre = img + lab + b
    return {"pre_std_image": round(float(img.std()), 3), "pre_std_label": round(float(lab.std()), 3),
            "frac_abs_pre_gt3": round(float((pre.abs() > 3).float().mean()), 3)}


def between_classes(feats: torch.Tensor) -> float:
    """Mean cosine similarity of the features of an episode's support items of different classes
    (5w1s: every pair), over the episodes: how much of what the IC sees is common to all items."""
    f = F.normalize(feats, dim=-1)
    sim = f @ f.transpose(1, 2)
    n = sim.shape[-1]
    return round(float((sim.sum((1, 2)) - n).mean() / (n * (n - 1))), 3)


def spread(logits: torch.Tensor) -> dict:
    """(B, Q, N) logits: std over the queries (per episode and class) and over the classes (per query)."""
    return {"logit_std_over_queries": round(float(logits.std(1).mean()), 4),
            "logit_std_over_classes": round(float(logits.std(-1).mean()), 4)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, default=2)
    args, overrides = p.parse_known_args()
    torch.set_num_threads(1)
    base = ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification", "model.output_dim=5"]
    cfg = load_config(None, base + overrides)
    eps = OmniglotEpisodes(cfg, ways=5, shots=1)
    batches = [stack_episodes([eps.episode("train", 16 * i + j) for j in range(16)]) for i in range(args.batches)]
    for ic_input in ("raw", "layernorm", "fan_in", "layernorm_fan_in"):
        for oc_input in ("read", "read_query"):
            c = load_config(None, base + [f"fewshot.ic_input={ic_input}", f"fewshot.oc_input={oc_input}"] + overrides)
            m = FewShotNMNMethod(c, ways=5, seed=0, fast=False).model.train()
            rows = []
            with torch.no_grad():
                for batch in batches:
                    s_len = batch["sx"].shape[1]
                    feats = m.encode(torch.cat([batch["sx"], batch["qx"]], 1))
                    x = torch.cat([feats[:, :s_len], F.one_hot(batch["sy"], 5).float()], -1)
                    cell = m.ic.cell
                    stats = gate_stats(cell.weight_ih, cell.bias_ih + cell.bias_hh, x, feats.shape[-1])
                    logits = m.queries(m.support(feats[:, :s_len], batch["sy"]), feats[:, s_len:])
                    rows.append({**stats, **spread(logits),
                                 "feature_mean": round(float(feats.mean()), 3),
                                 "feature_rms": round(float(feats.pow(2).mean().sqrt()), 3),
                                 "feature_cos_between_classes": between_classes(feats[:, :s_len])})
            print(f"nmn ic_input={ic_input} oc_input={oc_input}", rows, flush=True)
    mann = MannMethod(cfg, ways=5, seed=0).model.train()
    rows = []
    with torch.no_grad():
        for batch in batches:
            b, s_len = batch["sy"].shape
            sx = batch["sx"].reshape(b, s_len, -1)
            prev = torch.cat([torch.zeros(b, 1, 5), F.one_hot(batch["sy"], 5).float()[:, :-1]], 1)
            cell = mann.controller
            stats = gate_stats(cell.weight_ih, cell.bias_ih + cell.bias_hh, torch.cat([sx, prev], -1), sx.shape[-1])
            logits = mann(sx, batch["sy"], batch["qx"].reshape(b, batch["qx"].shape[1], -1))
            rows.append({**stats, **spread(logits)})
    print("mann", rows, flush=True)


if __name__ == "__main__":
    main()
