"""Where the few-shot NMN loses the identity of an item on its way through the memory, on real
Omniglot 5-way 1-shot training episodes (``--batches`` batches of 16, train mode as in meta-training).

    python docs/diagnostics/fewshot_retrieval_chain.py [--batches 2] [--seeds 0] [--checkpoint PATH] [key=value ...]
    python docs/diagnostics/fewshot_retrieval_chain.py --synthetic COMMON NOISE [--seeds 0,1] [key=value ...]

For each query, the support item it is "closest" to at each stage of Eq. 1-7, and how often that is
the support item of the query's class (chance 20%; the query has no label, so a learner can only
answer if this identity survives to what it reads):

* ``features``: cosine between f^E's outputs as the IC takes them (after the LayerNorm with
  ``ic_input=layernorm*``): what the encoder offers.
* ``keys``: cosine between the IC's outputs q (the support's key at its step, the query's key).
  ``keys_first_step``: the same from the IC's zero state, without the label: what the keys would
  keep without the IC's history (the support items before, for a query the whole support part).
* ``address``: overlap z_query . z_support between the query's attention over the slots (on the
  final memory) and the attention the support item wrote with (Eq. 3): does a query read where its
  class's item wrote?
* ``read``: cosine between what the query reads (m_bar, Eq. 4) and what the support item wrote
  (m', Eq. 6-7), each centred by the episode's mean over its items.

Also: the attention's entropy (log 10 = 2.30 is uniform over the 10 slots), the mean overlap
between the attentions of different support items (1/l-ish: they write to different slots; near
their self-overlap: all write to the same ones) and the share of the slot mix (1 - z) that keeps
each slot's initial content. ``--checkpoint``: a job's ``checkpoint.pt`` (the model as trained;
the forms given as overrides must match it). ``--synthetic COMMON NOISE``: the same on the
synthetic features of ``sharedsg bench nmn-synthetic --common COMMON --noise NOISE`` (batches of 16
episodes drawn as its training batches of each seed) instead of Omniglot. ``--seeds``: the initial
weights (FewShotNMN's draw), averaged over. docs/results/fewshot_nmn.md.
"""
import argparse

import torch
from torch.nn import functional as F

from sharedsg.bench.nmn_synthetic import common_pattern, synthetic_batch
from sharedsg.config import load_config
from sharedsg.experiments.omniglot import OmniglotEpisodes
from sharedsg.learn.fewshot import FewShotNMNMethod, stack_episodes
from sharedsg.model.fewshot import cell_weights, lstm_step
from sharedsg.model.memory import attention_entropy, read, write


def nearest_is_own_class(sim: torch.Tensor, sy: torch.Tensor, qy: torch.Tensor) -> float:
    """sim (B, Q, S): a query's similarity to each support item -> share of queries whose most
    similar support item is of their class."""
    picked = torch.gather(sy, 1, sim.argmax(-1))
    return float((picked == qy).float().mean())


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, Q, k), (B, S, k) -> (B, Q, S) cosines."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(1, 2)


def chain(model, sf: torch.Tensor, sy: torch.Tensor, qf: torch.Tensor, qy: torch.Tensor) -> dict:
    """The retrieval statistics of one batch of episodes (module docstring): support features
    (B, S, D) as the IC takes them and labels (B, S), query features (B, Q, D) and labels (B, Q)."""
    s_len = sy.shape[1]
    sp = model.support(sf, sy)
    keys_s = torch.stack(sp.h_out["ic"], 1)  # (B, S, k)
    written = torch.stack(sp.h_out["wc" if model.wc is not None else "ic"], 1)  # (B, S, k): m'_t (write_input=q: q_t)
    # the support items' attention, re-computed along the support pass (memory before each write)
    memory = model.memory_init.unsqueeze(0).expand(sy.shape[0], -1, -1)
    z_s = []
    for t in range(s_len):
        z = model._address(keys_s[:, t], memory)
        z_s.append(z)
        memory = write(memory, z, written[:, t])
    z_s = torch.stack(z_s, 1)  # (B, S, l)
    label = qf.new_zeros(qf.shape[0], qf.shape[1], model.ways)
    q = model._step("ic", torch.cat([qf, label], -1), sp.states["ic"], None)[0]  # (B, Q, k)
    b, n_q, k = q.shape
    mem = sp.memory.repeat_interleave(n_q, 0)
    z_q = model._address(q.reshape(b * n_q, k), mem)
    m_bar = read(z_q, mem).reshape(b, n_q, k)
    z_q = z_q.reshape(b, n_q, -1)
    w = cell_weights(model.ic)

    def first_step(f: torch.Tensor) -> torch.Tensor:
        zero = f.new_zeros(*f.shape[:-1], k)
        return lstm_step(w, torch.cat([f, f.new_zeros(*f.shape[:-1], model.ways)], -1), (zero, zero))[0]

    def centre(x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(1, keepdim=True)

    overlap = z_s @ z_s.transpose(1, 2)  # (B, S, S)
    eye = torch.eye(s_len, dtype=torch.bool)
    return {
        "features": nearest_is_own_class(cosine(qf, sf), sy, qy),
        "keys": nearest_is_own_class(cosine(q, keys_s), sy, qy),
        "keys_first_step": nearest_is_own_class(cosine(first_step(qf), first_step(sf)), sy, qy),
        "address": nearest_is_own_class(z_q @ z_s.transpose(1, 2), sy, qy),
        "read": nearest_is_own_class(cosine(centre(m_bar), centre(written)), sy, qy),
        "entropy_support": float(attention_entropy(z_s)),
        "entropy_query": float(attention_entropy(z_q)),
        "overlap_self": float(overlap[:, eye].mean()),
        "overlap_between": float(overlap[:, ~eye].mean()),
        "initial_kept": float((1 - z_s).prod(1).mean()),
    }


def omniglot_batches(cfg, n: int):
    """``n`` batches of 16 real 5w1s training episodes (the same for every seed), each a function of
    the model giving chain()'s arguments."""
    eps = OmniglotEpisodes(cfg, ways=5, shots=1)
    for i in range(n):
        b = stack_episodes([eps.episode("train", 16 * i + j) for j in range(16)])
        yield lambda model, b=b: split(model.encode(torch.cat([b["sx"], b["qx"]], 1)), b["sy"], b["qy"])


def synthetic_batches(common: float, noise: float, n: int, seed: int):
    """``n`` batches of 16 synthetic episodes as ``bench nmn-synthetic`` draws a seed's training batches."""
    g, pattern = torch.Generator().manual_seed(seed), common_pattern(576, seed)
    for _ in range(n):
        b = synthetic_batch(16, 5, 5, 576, noise, g, common, pattern)
        yield lambda model, b=b: (model.features(b["sf"]), b["sy"], model.features(b["qf"]), b["qy"])


def split(feats: torch.Tensor, sy: torch.Tensor, qy: torch.Tensor):
    """An episode batch's features (B, S + Q, D) -> chain()'s support and query arguments."""
    s_len = sy.shape[1]
    return feats[:, :s_len], sy, feats[:, s_len:], qy


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--seeds", default="0")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--synthetic", nargs=2, type=float, default=None, metavar=("COMMON", "NOISE"))
    args, overrides = p.parse_known_args()
    torch.set_num_threads(1)
    base = ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification", "model.output_dim=5"]
    cfg = load_config(None, base + overrides)
    rows = []
    for seed in [int(x) for x in args.seeds.split(",")]:
        method = FewShotNMNMethod(cfg, ways=5, seed=seed, fast=False)
        if args.checkpoint:
            method.load_state_dict(torch.load(args.checkpoint, weights_only=False)["method"])
        model = method.model.train()
        batches = (synthetic_batches(*args.synthetic, args.batches, seed) if args.synthetic
                   else omniglot_batches(cfg, args.batches))
        with torch.no_grad():
            rows += [chain(model, *make(model)) for make in batches]
    out = {key: round(sum(r[key] for r in rows) / len(rows), 3) for key in rows[0]}
    print(" ".join(f"{o}" for o in overrides) or "defaults", out, flush=True)


if __name__ == "__main__":
    main()
