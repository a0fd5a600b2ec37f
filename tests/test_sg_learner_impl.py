"""model.impl=fast for the SG learner: the same predictions (Eq. 9) and the same Eq. 11 updates
as the reference, to 1e-5."""

import pytest
import torch

from sharedsg.learn.sg import SGLearner
from sharedsg.learn.types import SGTargets

CONTROLLERS = ("ic", "oc", "wc")


def _targets(seed, b=4, t=6, k=8, d=2):
    g = torch.Generator().manual_seed(seed)
    return SGTargets({c: torch.randn(b, t, k, generator=g) for c in CONTROLLERS}, torch.randn(b, t, d, generator=g),
                     {c: torch.randn(b, t, k, generator=g) * 0.1 for c in CONTROLLERS})


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_fast_predictions_and_updates_equal_the_reference(small_cfg, kind):
    learners = [SGLearner(small_cfg(f"sg.kind={kind}", f"model.impl={impl}").model,
                          small_cfg(f"sg.kind={kind}").sg, seed=0) for impl in ("reference", "fast")]
    ref, fast = learners
    for mods in (ref.modules, fast.modules):  # a non-zero head, so every weight gets a gradient
        torch.manual_seed(5)
        for name, p in mods.named_parameters():
            if "head" in name:
                p.data.normal_(0, 0.3)
    a, b = _targets(0), _targets(1)
    longer = _targets(2, b=3, t=9)
    for step, batches in enumerate(([a], [a, b], [a, longer, b])):  # one push, coalesced, two shapes
        pred_ref = ref.predict(a.h, a.y)
        pred_fast = fast.predict(a.h, a.y)
        for c in CONTROLLERS:
            torch.testing.assert_close(pred_fast[c], pred_ref[c], atol=1e-5, rtol=1e-5)
        l_ref, l_fast = ref.update(batches), fast.update(batches)
        assert list(l_ref) == list(l_fast)
        for key, v in l_ref.items():
            assert l_fast[key] == pytest.approx(v, rel=1e-5, abs=1e-7), key
        for (n, p), q in zip(ref.modules.named_parameters(), fast.modules.parameters()):
            torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-5, msg=lambda m: f"{n} after update {step}: {m}")
