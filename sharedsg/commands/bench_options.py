"""The benchmarks' command-line options, one function per ``sharedsg bench`` command.

Kept apart from the benchmarks (which import torch, and ray for the runtime ones) so that building
the ``sharedsg`` parser imports neither: ``sharedsg --help``, ``status``, ``stop`` and ``data``
start in a fraction of a second."""

from __future__ import annotations

import argparse
from pathlib import Path

from sharedsg.commands.args import integer, integers, names, number

LEARNER_CASES = ("trajectory", "sg_update", "fewshot")  # sharedsg bench learner --cases
# sharedsg bench nmn-synthetic --variants: fewshot.ic_input:fewshot.oc_input
NMN_VARIANTS = ("raw:read", "layernorm:read", "fan_in:read", "layernorm_fan_in:read", "raw:read_query",
                "layernorm:read_query", "fan_in:read_query", "layernorm_fan_in:read_query")


def learner(p: argparse.ArgumentParser) -> None:
    """The options of ``sharedsg bench learner``."""
    p.add_argument("--rounds", type=integer(1), default=5, help="interleaved timing rounds (medians reported)")
    p.add_argument("--steps", type=integer(1), default=5, help="timed steps per case and round (after 2 warm-up steps)")
    p.add_argument("--batch-sizes", type=integers(1), default="16,32", help="trajectory batch sizes, comma separated")
    p.add_argument("--threads", type=integer(1), default=1, help="torch threads (1 = one core, as a Ray actor gets)")
    p.add_argument("--cases", type=names(*LEARNER_CASES), default=",".join(LEARNER_CASES), help="which cases, comma separated")
    p.add_argument("--fewshot-settings", default="5w1s,5w5s",
                   help="few-shot settings of the proposed NMN's reference vs fast meta-update, comma separated")
    p.add_argument("overrides", nargs="*",
                   help="config key=value overrides (every case; the few-shot cases apply them after 5w1s.yaml's)")


def data(p: argparse.ArgumentParser) -> None:
    """The options of ``sharedsg bench data``."""
    p.add_argument("--root", type=Path, default=None, help="data root (default: $SHAREDSG_DATA, else the per-user data folder)")
    p.add_argument("--queries", type=integer(1), default=5, help="query images per class in each episode")
    p.add_argument("--seconds", type=number(0.01), default=2.0, help="time spent sampling each episode setting")


def runtime(p: argparse.ArgumentParser) -> None:
    """The options of ``sharedsg bench runtime``."""
    p.add_argument("--steps", type=integer(1), default=100, help="timed steps per block")
    p.add_argument("--reps", type=integer(1), default=3, help="rounds of interleaved blocks (ratios: median)")
    p.add_argument("--warmup", type=integer(0), default=5, help="untimed steps first")
    p.add_argument("--pushes", type=integer(1), default=200, help="pushes in the server throughput test")
    p.add_argument("overrides", nargs="*", help="config key=value overrides (on top of the bench's own)")


def server(p: argparse.ArgumentParser) -> None:
    """The options of ``sharedsg bench server``."""
    p.add_argument("--streams", type=integers(1), default="1,2,4,8,16,32", help="numbers of pushers, comma-separated")
    p.add_argument("--policies", type=names("exact", "buffered"), default="exact,buffered", help="sg.policy values to measure")
    p.add_argument("--rate", type=number(0.01), default=20.0, help="pushes per second offered by each pusher")
    p.add_argument("--seconds", type=number(0.01), default=10.0, help="measured seconds per row")
    p.add_argument("--warmup", type=number(0.0), default=2.0, help="unmeasured seconds before each row")
    p.add_argument("--records", type=integer(1), default=8, help="target sets recorded (replayed in turn)")
    p.add_argument("overrides", nargs="*", help="config key=value overrides (on top of the demo shape)")


def soak(p: argparse.ArgumentParser) -> None:
    """The options of ``sharedsg bench soak``."""
    p.add_argument("--minutes", type=number(0.01), default=30.0, help="length of the soak")
    p.add_argument("--streams", type=integer(1, 4), default=4, help="stream actors (1-4)")
    p.add_argument("--rss-at", type=number(0.0), default=5.0,
                   help="minute whose peak RSS the end is compared with (at most 1/3 of the run)")
    p.add_argument("overrides", nargs="*", help="config key=value overrides")


SG_FIT_TASKS = ("trajectory", "omniglot_5w1s")  # sharedsg bench sg-fit --tasks (sharedsg.bench.sgfit.TASKS)
SG_FIT_SETTINGS = ("configured", "scaling", "lr", "hidden", "kind", "condition")  # ... --settings


def sg_fit(p: argparse.ArgumentParser) -> None:
    """The options of ``sharedsg bench sg-fit``."""
    p.add_argument("--tasks", type=names(*SG_FIT_TASKS), default=",".join(SG_FIT_TASKS),
                   help="whose target sets, comma separated (omniglot_5w1s is skipped without Omniglot)")
    p.add_argument("--settings", type=names(*SG_FIT_SETTINGS), default=",".join(SG_FIT_SETTINGS),
                   help="the configured sg.* and which alternatives (one thing changed each), comma separated")
    p.add_argument("--records", type=integer(5), default=200, help="trajectory target sets recorded (steps of the stream)")
    p.add_argument("--fewshot-records", type=integer(5), default=40,
                   help="few-shot target sets recorded (meta-updates of 16 episodes)")
    p.add_argument("--holdout", type=number(0.05), default=0.2, help="share of the records held out (the last ones)")
    p.add_argument("--passes", type=integer(1), default=3, help="passes over the training sets")
    p.add_argument("--seed", type=integer(0), default=0, help="seed of the recorded learner and of the predictors")
    p.add_argument("--threads", type=integer(1), default=1, help="torch threads")
    p.add_argument("--ceiling", action="store_true",
                   help="add the ceiling: a larger predictor on --ceiling-factor times the records (minutes)")
    p.add_argument("--ceiling-factor", type=integer(2), default=5, help="the ceiling's records, times --records")
    p.add_argument("--ceiling-hidden", type=integer(1), default=256, help="the ceiling predictor's hidden size")
    p.add_argument("--ceiling-passes", type=integer(1), default=5, help="the ceiling's passes over its training sets")
    p.add_argument("overrides", nargs="*", help="config key=value overrides (on top of the task's shape), e.g. sg.lr=3e-4")


def nmn_synthetic(p: argparse.ArgumentParser) -> None:
    """The options of ``sharedsg bench nmn-synthetic``."""
    p.add_argument("--variants", type=names(*NMN_VARIANTS), default=",".join(NMN_VARIANTS),
                   help="fewshot.ic_input:fewshot.oc_input pairs, comma separated")
    p.add_argument("--seeds", type=integers(0), default="0,1,2,3,4", help="paired seeds (same weights and episodes per seed)")
    p.add_argument("--steps", type=integer(1), default=1500, help="meta-updates of fewshot.meta_batch (16) episodes")
    p.add_argument("--eval-every", type=integer(1), default=100, help="steps between held-out accuracies")
    p.add_argument("--eval-batches", type=integer(1), default=8, help="held-out batches of episodes per accuracy")
    p.add_argument("--noise", type=number(0.0), default=0.5, help="item noise relative to the prototype (std)")
    p.add_argument("--common", type=number(0.0), default=0.0,
                   help="weight of a pattern every item shares, relative to the prototype (0: none)")
    p.add_argument("--leave", type=number(0.0), default=0.4, help="accuracy that counts as having left chance (1/N)")
    p.add_argument("--threads", type=integer(1), default=1, help="torch threads")
    p.add_argument("overrides", nargs="*", help="config key=value overrides (model.*, fewshot.*)")
