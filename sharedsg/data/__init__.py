"""Data for the paper's experiments: Omniglot (Sec. 4.1), MNIST (Sec. 5.1) and
cyclist/pedestrian trajectories from SDD or inD (Sec. 4.2, 5.2). No ray imports."""

from sharedsg.data.errors import DataError

__all__ = ["DataError"]
