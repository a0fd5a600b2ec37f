"""inD loading (Sec. 4.2) on inD-format files written here, with the column names of the data README."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List

import pytest

from sharedsg.config import load_config
from sharedsg.data.errors import DataError
from sharedsg.data.ind import find_ind_dir, load_ind
from sharedsg.data.sources import load_tracks, make_source
from sharedsg.data.trajectories import WindowSpec, build_windows

TRACKS = ("recordingId,trackId,frame,trackLifetime,xCenter,yCenter,heading,width,length,xVelocity,yVelocity,"
          "xAcceleration,yAcceleration,lonVelocity,latVelocity,lonAcceleration,latAcceleration")
META = "recordingId,trackId,initialFrame,finalFrame,numFrames,width,length,class"
RECORDING = ("recordingId,locationId,frameRate,speedLimit,weekday,startTime,duration,numTracks,numVehicles,numVRUs,"
             "latLocation,lonLocation,xUtmOrigin,yUtmOrigin,orthoPxToMeter")
# trackId -> (class, first frame, number of frames); track 4 is listed but has no rows
TRACK_PLAN: Dict[int, tuple] = {0: ("bicycle", 0, 260), 1: ("pedestrian", 10, 320), 2: ("car", 0, 120),
                                3: ("pedestrian", 400, 150), 4: ("pedestrian", 0, 0)}


def track_lines(recording: int, plan: Dict[int, tuple]) -> List[str]:
    lines = []
    for track_id, (_, first, count) in plan.items():
        for k in range(count):
            x, y = 10.0 + 0.2 * k + track_id, -5.0 + 0.05 * k * track_id
            lines.append(f"{recording},{track_id},{first + k},{k},{x:.5f},{y:.5f},90.0,0.0,0.0,5.0,0.0,0.0,0.0,5.0,0.0,0.0,0.0")
    return lines


def write_recording(folder: Path, recording: int = 7, plan: Dict[int, tuple] = TRACK_PLAN) -> Dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {s: folder / f"{recording:02d}_{s}.csv" for s in ("tracks", "tracksMeta", "recordingMeta")}
    paths["tracks"].write_text("\n".join([TRACKS] + track_lines(recording, plan)) + "\n")
    meta = [f"{recording},{t},{f},{f + max(n - 1, 0)},{n},0.0,0.0,{c}" for t, (c, f, n) in plan.items()]
    paths["tracksMeta"].write_text("\n".join([META] + meta) + "\n")
    paths["recordingMeta"].write_text(f"{RECORDING}\n{recording},2,25.0,13.89,Tuesday,08:00,900.0,5,1,4,50.78,6.06,297000.0,5629000.0,0.0126\n")
    return paths


def edit(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines()
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines) + "\n")


def test_loads_bicycles_and_pedestrians(tmp_path, caplog):
    write_recording(tmp_path / "ind" / "data")
    write_recording(tmp_path / "ind" / "data", recording=8)
    folder = find_ind_dir(tmp_path)
    assert folder == tmp_path / "ind" / "data"
    tracks = load_ind(folder)
    assert tracks.track_counts == {"cyclist": 2, "pedestrian": 6}
    assert sorted(t.key for t in tracks.tracks) == sorted(f"ind/{r}/{t}" for r in ("07", "08") for t in (0, 1, 3))
    assert tracks.skipped == {"empty tracks (listed in tracksMeta, no rows)": 2}
    with caplog.at_level(logging.WARNING, logger="sharedsg.data"):
        tracks.report_skips()
    assert "skipped 2 empty tracks" in caplog.text
    bicycle = next(t for t in tracks.tracks if t.key == "ind/07/0")
    assert bicycle.fps == 25.0 and bicycle.segments[0].shape == (260, 2)
    assert bicycle.segments[0][1].tolist() == pytest.approx([10.2, -5.0])
    built = build_windows(tracks, WindowSpec(test_fraction=0.5))
    # 260 frames -> windows at 0, 50, 100, 150; 320 -> 5; 150 -> 2
    assert sum(len(v) for k, v in built.scaled.items() if k[0] == "cyclist") == 2 * 4


def test_frame_gaps_start_a_new_segment(tmp_path):
    paths = write_recording(tmp_path)
    lines = paths["tracks"].read_text().splitlines()
    del lines[1 + 100]  # frame 100 of the bicycle
    paths["tracks"].write_text("\n".join(lines) + "\n")
    bicycle = next(t for t in load_ind(tmp_path).tracks if t.key == "ind/07/0")
    assert [len(s) for s in bicycle.segments] == [100, 159]


def test_make_source_reads_ind(tmp_path):
    write_recording(tmp_path / "inD")
    write_recording(tmp_path / "inD", recording=8)
    cfg = load_config(None, ["data.format=ind", f"data.root={tmp_path}", "data.test_fraction=0.5"])
    source = make_source(cfg.data, "pedestrian", "train", seed=0)
    batch = source.next_batch(4)
    assert batch.x.shape == (4, 50, 2) and batch.y.shape == (4, 50, 2)
    assert load_tracks("ind", tmp_path, 29.97).track_counts["pedestrian"] == 6


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing_column", r"07_tracks\.csv: missing column 'yCenter'"),
        ("nan", r"07_tracks\.csv: line 4: xCenter is NaN"),
        ("text", r"07_tracks\.csv: line 5: column frame is 'abc', not a number"),
        ("order", r"07_tracks\.csv: line 12: frame 9 of track 0 does not come after frame 9"),
        ("unknown_class", r"07_tracksMeta\.csv: line 3: unknown class 'scooter'"),
        ("missing_meta", r"07_tracksMeta\.csv: not found"),
        ("missing_recording_meta", r"07_recordingMeta\.csv: not found"),
        ("empty", r"07_tracks\.csv: the file is empty"),
        ("header_only", r"07_tracks\.csv: the file has a header but no data rows"),
        ("unlisted_track", r"07_tracks\.csv: track 0 has rows but no line in 07_tracksMeta\.csv"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, damage, message):
    paths = write_recording(tmp_path)
    if damage == "missing_column":
        paths["tracks"].write_text(paths["tracks"].read_text().replace("yCenter", "yCentre", 1))
    elif damage == "nan":
        edit(paths["tracks"], 4, ",10.40000,", ",nan,")
    elif damage == "text":
        edit(paths["tracks"], 5, "7,0,3,3,", "7,0,abc,3,")
    elif damage == "order":
        edit(paths["tracks"], 12, "7,0,10,10,", "7,0,9,10,")
    elif damage == "unknown_class":
        edit(paths["tracksMeta"], 3, "pedestrian", "scooter")
    elif damage == "missing_meta":
        paths["tracksMeta"].unlink()
    elif damage == "missing_recording_meta":
        paths["recordingMeta"].unlink()
    elif damage == "empty":
        paths["tracks"].write_text("")
    elif damage == "header_only":
        paths["tracks"].write_text(TRACKS + "\n")
    elif damage == "unlisted_track":
        paths["tracksMeta"].write_text("\n".join(paths["tracksMeta"].read_text().splitlines()[:1] + paths["tracksMeta"].read_text().splitlines()[2:]) + "\n")
    with pytest.raises(DataError, match=message) as info:
        load_ind(tmp_path)
    assert "\n" not in str(info.value)


def test_no_recordings_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no inD recordings"):
        find_ind_dir(tmp_path)


@pytest.mark.parametrize("name, line, old, new, message", [
    ("tracks", 4, ",10.40000,", ",inf,", r"07_tracks\.csv: line 4: xCenter is 'inf', not a finite number"),
    ("tracks", 4, "7,0,2,2,", "7,0,2.5,2,", r"07_tracks\.csv: line 4: frame '2\.5' is not a non-negative integer"),
    ("tracks", 6, "7,0,4,4,", "7,-1,4,4,", r"07_tracks\.csv: line 6: trackId '-1' is not a non-negative integer"),
    ("tracks", 4, "7,0,2,2,10.40000,-5.00000,90.0,", "7,0,2,", r"07_tracks\.csv: line 4: 13 fields, but the header has 17 columns"),
    ("tracks", 5, ",90.0,", ",90.0,1,", r"07_tracks\.csv: line 5: 18 fields, but the header has 17 columns"),
    ("tracks", 7, ",90.0,", ",north,", r"07_tracks\.csv: line 7: column heading is 'north', not a number"),
    ("tracks", 6, "7,0,4,4,", "7,0,#4,4,", r"07_tracks\.csv: line 6: column frame is '#4', not a number"),
    ("tracksMeta", 2, "7,0,", "7,inf,", r"07_tracksMeta\.csv: line 2: trackId 'inf' is not a non-negative integer"),
    ("tracksMeta", 3, "7,1,", "7,0,", r"07_tracksMeta\.csv: line 3: track 0 is listed twice"),
    ("recordingMeta", 2, ",25.0,", ",inf,", r"07_recordingMeta\.csv: line 2: frameRate 'inf' is not a positive number"),
    ("recordingMeta", 2, ",25.0,", ",-25,", r"07_recordingMeta\.csv: line 2: frameRate '-25' is not a positive number"),
])
def test_malformed_lines_are_named(tmp_path, name, line, old, new, message):
    paths = write_recording(tmp_path)
    edit(paths[name], line, old, new)
    with pytest.raises(DataError, match=message) as info:
        load_ind(tmp_path)
    assert "\n" not in str(info.value)


def test_blank_lines_and_quoted_numbers_are_read(tmp_path):
    paths = write_recording(tmp_path)
    lines = paths["tracks"].read_text().splitlines()
    lines[3] = lines[3].replace(",10.40000,", ',"10.40000",')
    paths["tracks"].write_text("\n".join(lines[:5] + [""] + lines[5:]) + "\n\n")
    reference = load_ind(write_recording(tmp_path / "clean")["tracks"].parent)
    assert [t.segments[0].tolist() for t in load_ind(tmp_path).tracks] == [t.segments[0].tolist() for t in reference.tracks]
    edit(paths["tracks"], 13, "7,0,10,10,", "7,0,9,10,")  # line numbers count the blank line 6
    with pytest.raises(DataError, match=r"07_tracks\.csv: line 13: frame 9 of track 0 does not come after frame 9"):
        load_ind(tmp_path)


@pytest.mark.parametrize("name, line", [("tracks", 7), ("tracksMeta", 3), ("recordingMeta", 2)])
def test_text_that_is_not_utf8_names_the_line(tmp_path, name, line):
    paths = write_recording(tmp_path)
    lines = paths[name].read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b",", b",\xe9", 1)
    paths[name].write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=rf"07_{name}\.csv: line {line}: not UTF-8 text") as info:
        load_ind(tmp_path)
    assert "\n" not in str(info.value)


def test_a_missing_ind_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="no inD recordings .* set SHAREDSG_DATA .*ind-dataset.com"):
        find_ind_dir(tmp_path)
