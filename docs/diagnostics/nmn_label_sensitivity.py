"""How much the NMN memory learner's query logits depend on the support labels at initialisation.

    python docs/diagnostics/nmn_label_sensitivity.py [key=value ...]

16 episodes of 5 random binary images; each query is a support image. Prints, for both
``fewshot.write_input`` forms, the logits' spread over the classes and over the queries, and
their mean change when the support labels are permuted (docs/design.md, "Where the item enters the memory"); then the
same for MANN at initialisation, the memory learner that does leave its plateau."""
import sys

import torch

from sharedsg.config import load_config
from sharedsg.learn.fewshot import FewShotNMNMethod
from sharedsg.learn.mann import MannMethod
torch.set_num_threads(1)
for write in ["m", "mq"]:
    cfg = load_config(None, ["experiment.kind=fewshot", "model.encoder=conv", "model.decoder=classification",
                             "model.output_dim=5", f"fewshot.write_input={write}"] + sys.argv[1:])
    m = FewShotNMNMethod(cfg, ways=5, seed=0, fast=False)
    g = torch.Generator().manual_seed(1)
    protos = (torch.rand(16, 5, 1, 28, 28, generator=g) < 0.3).float()
    sy = torch.stack([torch.randperm(5, generator=g) for _ in range(16)])
    qy = torch.arange(5).repeat(16, 1)
    sx = torch.stack([protos[b][sy[b]] for b in range(16)])
    qx = torch.stack([protos[b][qy[b]] for b in range(16)])
    m.model.train()
    with torch.no_grad():
        feats = m.model.encode(torch.cat([sx, qx], 1))
        l1 = m.model.queries(m.model.support(feats[:, :5], sy), feats[:, 5:])
        sy2 = torch.stack([torch.randperm(5, generator=g) for _ in range(16)])
        l2 = m.model.queries(m.model.support(feats[:, :5], sy2), feats[:, 5:])
        ic = m.model.support(feats[:, :5], sy).h_out["ic"]
    print(write, "logit std over classes", float(l1.std(-1).mean()), "over queries", float(l1.std(1).mean()),
          "change when labels permuted", float((l1 - l2).abs().mean()), "feat scale", float(feats.abs().mean()),
          "ic h_out std over steps", float(torch.stack(ic, 1).std(1).mean()))
mann = MannMethod(cfg, ways=5, seed=0)
with torch.no_grad():
    l1 = mann.model(sx.reshape(16, 5, -1), sy, qx.reshape(16, 5, -1))
    l2 = mann.model(sx.reshape(16, 5, -1), sy2, qx.reshape(16, 5, -1))
print("mann logit std over classes", float(l1.std(-1).mean()), "over queries", float(l1.std(1).mean()),
      "change when labels permuted", float((l1 - l2).abs().mean()))
