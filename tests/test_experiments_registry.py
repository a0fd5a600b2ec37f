"""The experiment registry: one table of kinds, the job plan of job kinds."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharedsg.config import load_config
from sharedsg.errors import UserError
from sharedsg.experiments.registry import KINDS, get_kind, job_plan

REPO = Path(__file__).resolve().parent.parent


def test_plan_rejects_duplicate_jobs_and_unknown_kinds():
    cfg = load_config(str(REPO / "configs/omniglot/5w1s.yaml"))
    assert [s.name for s in job_plan([cfg])] == [f"5w1s-{m}" for m in cfg.fewshot.methods]
    with pytest.raises(UserError, match="two configs"):
        job_plan([cfg, cfg])
    with pytest.raises(UserError, match="cannot be swept"):
        job_plan([load_config(None, [])])


def test_every_kind_is_a_runner_or_a_job_kind():
    for name, kind in KINDS.items():
        assert (kind.runner is None) != (kind.jobs is None and kind.job is None), name
    with pytest.raises(UserError, match="is not one of"):
        get_kind("nope")
