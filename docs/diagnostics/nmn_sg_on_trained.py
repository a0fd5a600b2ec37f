"""Can the SG predictors learn the controllers' gradients of a trained NMN memory learner, and does
their fast step then help it?

    python docs/diagnostics/nmn_sg_on_trained.py CONFIG BASELINE_JOB_DIR [ITERATIONS] [key=value ...]

CONFIG and overrides name the training seed (e.g. configs/omniglot/5w1s.yaml "fewshot.seeds=[1]");
BASELINE_JOB_DIR holds a trained baseline NMN job's checkpoint.pt. Its weights go into the proposed
method (fresh SG predictors, zero at the start) and stay fixed (batch norm on its running
statistics); only the SGs learn, by Eq. 11 with Adam (sg.lr), on ITERATIONS (default 300)
meta-batches of training episodes the baseline has not seen. Every 50 iterations it prints the
cosine between the synthetic and the true gradients (mean over the last 50 meta-batches) and the
accuracy on 100 validation episodes without a fast step and with the fast step of Eq. 10 from the
learned SGs (alpha = learner.fast_lr, fewshot.fast_weights) — against docs/diagnostics/
nmn_fast_step_headroom.py's oracle, the most that step could give.
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
iterations = int(sys.argv[3]) if len(sys.argv) > 3 and "=" not in sys.argv[3] else 300
cfg = load_config(config, [a for a in sys.argv[3:] if "=" in a] + ["fewshot.methods=[proposed]"])
(name,) = fewshot_jobs(cfg)
job = FewShotJob(cfg, name)
trained = checkpoint.load(f"{job_dir}/checkpoint.pt")
m = job.impl
m.model.load_state_dict(trained["method"]["model"])
m.model.eval()
start = int(trained["iteration"])  # the baseline's next training episodes
val = [stack_episodes([job.episodes.episode("val", i)]) for i in range(100)]


def validation() -> str:
    with torch.no_grad():
        plain = [float((m.model(b["sx"], b["sy"], b["qx"]).argmax(-1) == b["qy"]).float().mean()) for b in val]
        fast = [float((m.forward(b)[0].argmax(-1) == b["qy"]).float().mean()) for b in val]
    return f"validation {100 * np.mean(plain):.1f}% without the fast step, {100 * np.mean(fast):.1f}% with it"


print(f"{name}: the baseline's weights at its iteration {start}, fixed; alpha {m.alpha:g}, fast weights in the "
      f"{m.fast_weights}; {validation()}")
cosines: dict = {c: [] for c in FAST_CONTROLLERS}
ratios: dict = {c: [] for c in FAST_CONTROLLERS}
for it in range(1, iterations + 1):
    batch = stack_episodes(job.train_episodes(start + it))
    _, _, _, targets, first, s = m.gradients(batch)
    m.train_sg(first, batch["sy"], targets)
    for c in FAST_CONTROLLERS:
        cosines[c].append(float(F.cosine_similarity(s[c].flatten(), targets[c].flatten(), dim=0)))
        ratios[c].append(float(s[c].norm() / targets[c].norm()))
    if it % 50 == 0:
        print(f"  iteration {it}: cosine(synthetic, true) " + ", ".join(f"{c} {np.mean(cosines[c][-50:]):.3f}" for c in FAST_CONTROLLERS)
              + "; |synthetic| / |true| " + ", ".join(f"{c} {np.mean(ratios[c][-50:]):.2f}" for c in FAST_CONTROLLERS)
              + f"; {validation()}", flush=True)
