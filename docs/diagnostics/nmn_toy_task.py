"""Can the NMN memory learner (sharedsg/learn/fewshot.py, baseline: no fast path) learn an easy
episode task? Each episode: 5 fresh random binary
images (one per class) as supports; queries = the same images with 10% of pixels flipped.
Solving it needs the memory (the images are new every episode).

    python docs/diagnostics/nmn_toy_task.py WRITE_INPUT ITERATIONS [key=value ...]   # WRITE_INPUT: m (Eq. 6) or mq
Prints the training-query loss and accuracy every 25 meta-iterations of 16 episodes
(docs/results/omniglot.md: ln 5 = 1.609 is chance)."""
import sys
import time

import torch

from sharedsg.config import load_config
from sharedsg.data.episodes import Episode
from sharedsg.learn.fewshot import FewShotNMNMethod
torch.set_num_threads(1)
write, iters = sys.argv[1], int(sys.argv[2])
extra = sys.argv[3:]
cfg = load_config(None, ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification",
                         "model.output_dim=5", f"fewshot.write_input={write}", "fewshot.meta_lr=0.001"] + extra)
m = FewShotNMNMethod(cfg, ways=5, seed=0, fast=False)
g = torch.Generator().manual_seed(0)
def episode():
    protos = (torch.rand(5, 1, 28, 28, generator=g) < 0.3).float()
    sy = torch.randperm(5, generator=g)
    qy = torch.arange(5).repeat_interleave(2)[torch.randperm(10, generator=g)]
    q = protos[qy].clone()
    flip = torch.rand(q.shape, generator=g) < 0.1
    q[flip] = 1 - q[flip]
    return Episode(protos[sy], sy, q, qy, torch.arange(5), torch.zeros(5, dtype=torch.long))
t0 = time.process_time()
for it in range(1, iters + 1):
    met = m.meta_step([episode() for _ in range(16)])
    if it % 25 == 0:
        print(it, round(time.process_time() - t0), "loss", round(met["loss/query_train"], 4),
              "acc", round(met["accuracy/query_train"], 3), flush=True)
