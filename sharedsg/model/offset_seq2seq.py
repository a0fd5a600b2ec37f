"""The trajectory encoder-decoder with each future frame predicted as an offset from the last
observed frame, the form of the NMN's decoder (``model.predict_offsets``); MAML's network in
the trajectory meta-test.

:class:`~sharedsg.model.seq2seq.Seq2Seq` adds each step's output to the previous position, so
its 50 predicted frames are cumulative sums and the support loss's curvature along the output
layer grows like sum_t t^2 / T: SGD on it is unstable above a rate of ~2e-3 and Adam's
per-parameter steps move the far frames 50x more than the near ones. Here frame t is
last_observed + f^D(h_t), so every frame depends on the output layer once.
"""

from __future__ import annotations

import torch

from sharedsg.model.seq2seq import Seq2Seq


class OffsetSeq2Seq(Seq2Seq):
    """Seq2Seq whose decoder output is the offset of each future frame from the last observed one."""

    def forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """x: (B, T_obs, 2) -> (B, steps, 2); the decoder is fed its previous prediction."""
        _, (h, c) = self.encoder(x)
        h, c = h[0], c[0]
        last = x[:, -1]
        prev, outs = last, []
        for _ in range(steps):
            h, c = self.decoder(prev, (h, c))
            prev = last + self.out(h)
            outs.append(prev)
        return torch.stack(outs, dim=1)
