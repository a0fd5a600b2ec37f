"""SDD readers (Sec. 4.2 stand-in for inD) on small files written here: every malformed line of
``annotations.txt`` or ``estimated_scales.yaml`` is a one-line DataError naming the file and line."""

from __future__ import annotations

import pytest

from sharedsg.data.errors import DataError
from sharedsg.data.sdd import load_sdd, read_annotations, read_scales

GOOD = '0 1 2 3 4 5 0 0 0 "Biker"\n0 1 2 3 4 6 0 0 1 "Biker"\n3 10 20 30 40 5 1 0 0 "Pedestrian"\n'


def _one_line_error(call, match: str) -> str:
    with pytest.raises(DataError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_annotation_rows_are_named(tmp_path):
    path = tmp_path / "annotations.txt"
    path.write_text('0 1 2 3 4 5 0 0 0 "Biker"\n1 1 2 3 4 5 0 0 0 "Unicycle"\n')
    with pytest.raises(DataError, match=r"annotations\.txt: row 2: unknown label \"Unicycle\""):
        read_annotations(path)
    path.write_text('0 1 2 3 4 5 0 0 0 "Biker"\n1 1 2 3 4 5 0 0 "Biker"\n')
    with pytest.raises(DataError, match="row 2: 9 columns, expected 10"):
        read_annotations(path)
    path.write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        read_annotations(path)


def test_good_rows_and_blank_lines(tmp_path):
    path = tmp_path / "annotations.txt"
    path.write_text("\n" + GOOD.replace("\n", "\n\n", 1) + "\n\n")
    rows = read_annotations(path)
    assert rows.shape == (3, 10)
    assert rows[:, 9].tolist() == [1, 1, 0]  # the index into LABELS


@pytest.mark.parametrize("line, message", [
    ('1 1 2 3 4 5 0 0 0 "Biker" 7', r"row 5: 11 columns, expected 10"),
    ('1 1 2 3 4 5 0 0 0 Biker', r"row 5: unknown label Biker; expected one of .* in double quotes"),
    ('1 x 2 3 4 5 0 0 0 "Biker"', r"row 5: a non-numeric value in the first 9 columns"),
    ('1 1_0 2 3 4 5 0 0 0 "Biker"', r"row 5: a non-numeric value in the first 9 columns"),
    ('1 nan 2 3 4 5 0 0 0 "Biker"', r"row 5: xmin is nan, not a finite number"),
    ('1 1 2 inf 4 5 0 0 0 "Biker"', r"row 5: xmax is inf, not a finite number"),
    ('-1 1 2 3 4 5 0 0 0 "Biker"', r"row 5: track_id -1 is not a non-negative integer"),
    ('1 1 2 3 4 5.5 0 0 0 "Biker"', r"row 5: frame 5.5 is not a non-negative integer"),
    ('1 1 2 3 4 5 2 0 0 "Biker"', r"row 5: lost is 2, expected 0 or 1"),
    ('1 1 2 3 4 5 0 0 -1 "Biker"', r"row 5: generated is -1, expected 0 or 1"),
])
def test_malformed_annotation_line_is_named(tmp_path, line, message):
    path = tmp_path / "annotations.txt"
    path.write_text(GOOD + "\n" + line + "\n")  # the blank line 4 still counts
    _one_line_error(lambda: read_annotations(path), rf"{tmp_path}/annotations\.txt: {message}")


def test_undecodable_annotations_are_one_line(tmp_path):
    path = tmp_path / "annotations.txt"
    path.write_bytes(GOOD.encode() + b'\xff\xfe 1 2 3 4 5 0 0 0 "Biker"\n')
    _one_line_error(lambda: read_annotations(path), r"annotations\.txt: cannot read")


@pytest.mark.parametrize("text, message", [
    ("- gates\n", r"line 1: expected a mapping 'scene: videoN: scale: <metres per pixel>'"),
    ("gates: 3\n", r"line 1: expected a mapping 'gates: videoN: scale: <metres per pixel>'"),
    ("gates:\n  video4: 0.03\n", r"line 2: expected a mapping 'scale: <metres per pixel>'"),
    ("gates:\n  video4:\n    certainty: 1.0\n", r"line 2: gates/video4 has no 'scale: <metres per pixel>'"),
    ("gates:\n  video2:\n    scale: 0.1\n  video4:\n    scale: abc\n", r"line 4: gates/video4: scale 'abc' is not a positive number"),
    ("gates:\n  video4:\n    scale: -0.03\n", r"line 2: gates/video4: scale '-0.03' is not a positive number"),
    ("gates:\n  video4:\n    scale: .inf\n", r"line 2: gates/video4: scale '.inf' is not a positive number"),
    ("gates:\n  video4:\n    scale: [1]\n", r"line 2: gates/video4: scale .* is not a positive number"),
    ("gates: [\n", r"not valid YAML"),
])
def test_malformed_scales_are_named(tmp_path, text, message):
    path = tmp_path / "estimated_scales.yaml"
    path.write_text(text)
    _one_line_error(lambda: read_scales(path), rf"estimated_scales\.yaml: {message}")


def test_scales_read(tmp_path):
    path = tmp_path / "estimated_scales.yaml"
    path.write_text("gates:\n  video4:\n    scale: 0.0303\n    certainty: 1.0\nlittle:\n  video0:\n    scale: 3e-2\n")
    assert read_scales(path) == {("gates", "video4"): 0.0303, ("little", "video0"): 0.03}


def test_a_missing_sdd_folder_says_how_to_get_it(tmp_path):
    message = _one_line_error(lambda: load_sdd(tmp_path / "sdd", 29.97), r"sdd: no <scene>/<videoN>/annotations\.txt files")
    assert "SHAREDSG_DATA" in message and "docs/data.md" in message


def test_a_video_without_a_scale_is_named(tmp_path):
    (tmp_path / "gates" / "video4").mkdir(parents=True)
    (tmp_path / "gates" / "video4" / "annotations.txt").write_text(GOOD)
    (tmp_path / "estimated_scales.yaml").write_text("little:\n  video0:\n    scale: 0.03\n")
    _one_line_error(lambda: load_sdd(tmp_path, 29.97), r"no scale for gates/video4")
    (tmp_path / "estimated_scales.yaml").write_text("gates:\n  video4:\n    scale: 0.5\n")
    tracks = load_sdd(tmp_path, 29.97)
    assert tracks.track_counts == {"cyclist": 1, "pedestrian": 1}
    assert [t.key for t in tracks.tracks] == ["sdd/gates/video4/0"]  # track 3 has only a lost row
