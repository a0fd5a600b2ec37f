"""The one exception every data loader raises for bad input, and the message for a missing dataset."""

from __future__ import annotations

from pathlib import Path

from sharedsg.errors import UserError

#: dataset -> how a user gets it into the data root
HOW_TO_GET = {
    "omniglot": "run `sharedsg data download omniglot`",
    "mnist": "run `sharedsg data download mnist`",
    "sdd": "copy the Stanford Drone Dataset annotations there (not downloadable by sharedsg, see docs/data.md)",
    "ind": "copy your inD recordings there (inD is licensed on request, https://www.ind-dataset.com)",
}


class DataError(UserError, ValueError):
    """A problem with the user's data files.

    The message is one line that names the file (and the row or column where it
    applies) and says how to fix it; the CLI prints it and exits with status 2.
    """


def how_to_enable(dataset: str) -> str:
    """One sentence: how to make ``dataset`` available (used by errors and by the test suite's skip lines)."""
    return f"set SHAREDSG_DATA (or data.root) to a folder holding {dataset}/, or {HOW_TO_GET[dataset]}"


def missing_dataset(dataset: str, where: Path, what: str) -> DataError:
    """``where`` lacks ``what`` of ``dataset``: the error says how to get it."""
    return DataError(f"{where}: {what}; {how_to_enable(dataset)}")
