"""How much the fast step of Eq. 10 could add to a trained NMN memory learner, at best.

    python docs/diagnostics/nmn_fast_step_headroom.py CONFIG JOB_DIR [EPISODES] [key=value ...]

CONFIG and the overrides as the job was run (e.g. configs/omniglot/5w1s.yaml "fewshot.seeds=[1]"
"fewshot.methods=[baseline]"); JOB_DIR the job's folder with its checkpoint.pt. On EPISODES
(default 200) validation episodes (held-out characters, not the test episodes) it prints the query
accuracy and loss of the trained weights without a fast step, then after one fast step of IC and OC
per episode (the proposed method's step, ``FewShotNMNMethod.adapt``) from an *oracle* SG: s = the
true gradient of that episode's query loss with respect to each support step's h (the Eq. 11
target, which needs the queries' labels), for several alphas and both ``fewshot.fast_weights``.
That is the step a perfect SG predictor would give, so its gain bounds what the proposed method's
fast path can add to these weights (docs/results/omniglot.md, "How much a perfect SG could add"). It
also prints the targets' size: the gradients the SGs would learn from at this point of training.
"""
import sys

import numpy as np
import torch
from torch.nn import functional as F

from sharedsg import checkpoint
from sharedsg.config import load_config
from sharedsg.experiments.omniglot import FewShotJob, fewshot_jobs
from sharedsg.learn.fewshot import stack_episodes
from sharedsg.model.fewshot import FAST_CONTROLLERS

torch.set_num_threads(1)
config, job_dir = sys.argv[1], sys.argv[2]
n_episodes = int(sys.argv[3]) if len(sys.argv) > 3 and "=" not in sys.argv[3] else 200
cfg = load_config(config, [a for a in sys.argv[3:] if "=" in a])
(name,) = fewshot_jobs(cfg)
job = FewShotJob(cfg, name)
job.load(checkpoint.load(f"{job_dir}/checkpoint.pt"))
m = job.impl
m.model.eval()  # batch norm on its running statistics, as at test
runs = [(0.0, "-")] + [(a, w) for a in [0.001, 0.003, 0.01, 0.03, 0.1, 1.0] for w in ["support", "queries"]]
acc: dict = {r: [] for r in runs}
loss: dict = {r: [] for r in runs}
norms: dict = {c: [] for c in FAST_CONTROLLERS}
for start in range(0, n_episodes, 20):
    batch = stack_episodes([job.episodes.episode("val", i) for i in range(start, min(start + 20, n_episodes))])
    s_len = batch["sx"].shape[1]
    with torch.no_grad():
        feats = m.model.encode(torch.cat([batch["sx"], batch["qx"]], dim=1))
    support, queries = feats[:, :s_len], feats[:, s_len:]
    first = m.model.support(support, batch["sy"])
    logits = m.model.queries(first, queries)
    per_episode = F.cross_entropy(logits.reshape(-1, m.ways), batch["qy"].reshape(-1), reduction="none")
    outs = torch.autograd.grad(per_episode.sum() / batch["qy"].shape[1],
                               [h for c in FAST_CONTROLLERS for h in first.h_out[c]])
    oracle = {c: torch.stack(outs[i * s_len:(i + 1) * s_len], dim=1) for i, c in enumerate(FAST_CONTROLLERS)}
    for c in FAST_CONTROLLERS:
        norms[c].append(float(oracle[c].norm(dim=-1).mean()))
    for alpha, where in runs:
        with torch.no_grad():
            if alpha:
                m.alpha, m.fast_weights = alpha, where
                logits = m.adapt(first, support, batch["sy"], queries, oracle)[0]
            lq = F.cross_entropy(logits.reshape(-1, m.ways), batch["qy"].reshape(-1))
        acc[(alpha, where)] += (logits.argmax(-1) == batch["qy"]).float().mean(1).tolist()
        loss[(alpha, where)].append(float(lq))
print(f"{name}, iteration {job.iteration}, {n_episodes} validation episodes; oracle |dL/dh| per support step: "
      + ", ".join(f"{c} {np.mean(norms[c]):.2e}" for c in FAST_CONTROLLERS))
for alpha, where in runs:
    label = "no fast step" if not alpha else f"oracle fast step, alpha {alpha:g}, fast_weights={where}"
    print(f"  {label:52s} query accuracy {100 * np.mean(acc[(alpha, where)]):5.1f}%  "
          f"query loss {np.mean(loss[(alpha, where)]):.3f}")
