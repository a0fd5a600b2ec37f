"""The ``needs_data`` marker (tests/data_marker.py): a test that reads a dataset without declaring
it fails, even where the data is present (as in CI), and so does one that borrows data a marked
test's module fixture loaded; without the data, marked tests are skipped with one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent

READS = '''
import pytest
from sharedsg.config import data_root, load_config


{marker}
def test_reads_the_data():
    assert sorted(p.name for p in (data_root() / "omniglot").iterdir()) == ["images_background.npz",
                                                                          "images_evaluation.npz"]


{marker}
def test_a_config_points_at_the_data():
    assert load_config(None, []).data.root == {root!r}
'''

BORROWS = '''
import pytest
from sharedsg.config import data_root


@pytest.fixture(scope="module")
def files():
    return sorted(p.name for p in (data_root() / "omniglot").iterdir())


@pytest.mark.needs_data("omniglot")
def test_marked_loads_the_fixture(files):
    assert files


def test_unmarked_borrows_it(files):
    assert files
'''


@pytest.fixture
def root(tmp_path):
    """A data root whose omniglot/ passes the marker's presence check (empty npz files suffice)."""
    folder = tmp_path / "data" / "omniglot"
    folder.mkdir(parents=True)
    for name in ("images_background.npz", "images_evaluation.npz"):
        (folder / name).write_bytes(b"")
    return tmp_path / "data"


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, root: Path | None) -> pytest.RunResult:
    """pytest in a subprocess with the marker's plugin, given ``root`` as SHAREDSG_DATA (None: no data)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), str(HERE.parent)]))
    if root is None:
        monkeypatch.delenv("SHAREDSG_DATA", raising=False)
        monkeypatch.setenv("XDG_DATA_HOME", str(pytester.path / "no-data"))
    else:
        monkeypatch.setenv("SHAREDSG_DATA", str(root))
    return pytester.runpytest_subprocess("-p", "data_marker", "-p", "no:cacheprovider", "-q", "-ra")


def test_tests_without_their_marker_fail_where_the_data_is(pytester, monkeypatch, root):
    pytester.makepyfile(test_reads=READS.format(marker="", root=str(root)))
    result = _run(pytester, monkeypatch, root)
    assert result.parseoutcomes() == {"failed": 2}, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*FileNotFoundError*sharedsg-no-data-*"])


def test_the_same_tests_with_their_marker_pass(pytester, monkeypatch, root):
    pytester.makepyfile(test_reads=READS.format(marker='@pytest.mark.needs_data("omniglot")', root=str(root)))
    result = _run(pytester, monkeypatch, root)
    assert result.parseoutcomes() == {"passed": 2}, result.stdout.str()[-3000:]


def test_an_unmarked_test_cannot_borrow_a_marked_tests_module_fixture(pytester, monkeypatch, root):
    """The unmarked test runs first and builds the fixture under the empty root; in file order the
    marked test would have loaded the data and the unmarked one passed."""
    pytester.makepyfile(test_borrows=BORROWS)
    result = _run(pytester, monkeypatch, root)
    assert result.parseoutcomes() == {"errors": 2}, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["ERROR test_borrows.py::test_unmarked_borrows_it*FileNotFoundError*",
                                 "ERROR test_borrows.py::test_marked_loads_the_fixture*"])


def test_without_the_data_marked_tests_are_skipped_with_one_line(pytester, monkeypatch):
    pytester.makepyfile(test_reads=READS.format(marker='@pytest.mark.needs_data("omniglot")', root=""))
    result = _run(pytester, monkeypatch, None)
    assert result.parseoutcomes() == {"skipped": 2}, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["SKIPPED [[]2[]] *no omniglot data: set SHAREDSG_DATA*"])
