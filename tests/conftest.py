"""Shared fixtures: small configs built through the real config system; and the ``needs_data``
marker (tests/data_marker.py): a test reads a dataset only with ``@pytest.mark.needs_data("omniglot")``
(or ``"mnist"``, ``"sdd"``), skipped without it; a test without the marker sees an empty data root.
"""

from __future__ import annotations

import pytest
import torch

from sharedsg.config import load_config

pytest_plugins = ["data_marker"]

SMALL = [
    "model.slot_width=8", "model.slots=4", "model.encoder_hidden=8",
    "sg.hidden=16", "learner.batch_size=4", "data.obs_len=6", "data.pred_len=6",
]


@pytest.fixture
def small_cfg():
    """A tiny trajectory NMN config; extra overrides via small_cfg(*more)."""
    def make(*more: str):
        return load_config(None, SMALL + list(more))
    return make


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield
