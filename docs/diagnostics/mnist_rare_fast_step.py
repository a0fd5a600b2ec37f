"""Whether the MNIST rare-class scores come from the test-time fast step or from the trained weights.

    python docs/diagnostics/mnist_rare_fast_step.py CONFIG JOB_DIR [JOB_DIR ...] [key=value ...]

CONFIG and the overrides as the jobs were run (e.g. configs/mnist_rare.yaml experiment.seed=0);
each JOB_DIR a finished job's folder (its name, ``proposed`` or ``baseline``, is the method) with
its checkpoint.pt. For each job it scores the 4,861 unseen MNIST test images of classes 5-9 (the
job's own test: each a query after one labelled image of each class 0-4) twice: with the fast
step of Eq. 10 from the job's SG predictors (both methods train them, Eq. 11; the baseline's were
never applied), and without it. Printed per job and setting: 10-way accuracy, accuracy among the
logits of classes 5-9 only (chance 20%), the true class's mean rank (1 = top). So a reader sees
whether the proposed model's rare-class scores are the fast step's doing or its weights'
(docs/results/mnist_rare.md).
"""
import sys
from pathlib import Path

import numpy as np
import torch

from sharedsg import checkpoint
from sharedsg.config import load_config
from sharedsg.experiments.mnist_rare import RareJob, _x, rare_scores

torch.set_num_threads(1)
config = sys.argv[1]
dirs = [Path(a) for a in sys.argv[2:] if "=" not in a]
cfg = load_config(config, [a for a in sys.argv[2:] if "=" in a])
print("job | test-time fast step | 10-way accuracy | among 5-9 | mean rank")
for d in dirs:
    job = RareJob(cfg, d.name)
    job.load(checkpoint.load(d / "checkpoint.pt"))
    x = _x(job.full_test.images)
    y = torch.from_numpy(job.full_test.labels.astype(np.int64))
    for fast in (True, False):
        job.learner.fast = fast
        s = rare_scores(job.test_logits(x), y)
        print(f"{d} | {'on' if fast else 'off'} (alpha {job.learner.alpha:g}) | {s['accuracy']:.4f} | "
              f"{s['accuracy_among_rare']:.4f} | {s['mean_rank']:.3f}")
