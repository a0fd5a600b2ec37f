"""Learners that run anywhere (one process, tests, or inside Ray actors): no ray imports here."""

from sharedsg.learn.sg import SGLearner
from sharedsg.learn.stream import StreamLearner
from sharedsg.learn.types import SGState, SGTargets, StepResult

__all__ = ["SGLearner", "StreamLearner", "SGState", "SGTargets", "StepResult"]
