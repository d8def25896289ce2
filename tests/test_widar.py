"""The Widar3.0 BVP loader on small files written in the dataset's format (scipy.io.savemat, v5 .mat)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from unitprune.data import DatasetFormatError, DatasetNotFoundError, load_dataset
from unitprune.data import widar

SUFFIX = "1-1e-07-100-20-100000-L0"


def write_bvp(path, steps: int, value: float) -> np.ndarray:
    bvp = np.random.default_rng(int(value * 1000)).random((20, 20, steps)) * value  # float64 like the dataset
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {widar.BVP_VARIABLE: bvp})
    return bvp


@pytest.fixture(scope="module")
def bvp_root(tmp_path_factory):
    """Room 1 (20181109, 6-link level) and room 2 (20181128, no 6-link level), 5 users each."""
    root = tmp_path_factory.mktemp("widar") / "BVP"
    files = {}
    for date, link in (("20181109", True), ("20181128", False)):
        for user in range(1, 6):
            for number in range(1, 7):
                for rep in (1, 2):
                    folder = root / f"{date}-VS" / ("6-link" if link else "") / f"user{user}"
                    path = folder / f"user{user}-{number}-1-{rep}-{rep}-{SUFFIX}.mat"
                    files[path] = write_bvp(path, steps=10 + number * 3, value=0.1 * user + 0.01 * number + rep)
    (root / "20181109-VS" / "6-link" / "user1" / "notes.mat").write_bytes(b"")  # a stray file: bad name, skipped
    return root, files


def test_scan_resolves_gestures_per_date(bvp_root):
    root, _ = bvp_root
    records, skipped = widar.scan_widar(root.parent)  # the folder holding BVP/ is accepted too
    by_key = {(r.date, r.user, r.repetition, Path_name(r.path)): r for r in records}
    assert skipped["bad_name"] == 1
    # 20181109: 1..4 are Push&Pull, Sweep, Clap, Slide; 5, 6 are vertical drawings (not benchmark gestures)
    nov9 = {r.gesture for r in records if r.date == "20181109"}
    assert nov9 == {"Push&Pull", "Sweep", "Clap", "Slide"}
    # 20181128: 4 = Draw-O(H), 5 = Draw-Zigzag(H), 6 = Draw-N(H) (skipped)
    nov28 = {r.gesture for r in records if r.date == "20181128"}
    assert nov28 == {"Push&Pull", "Sweep", "Clap", "Draw-O(H)", "Draw-Zigzag(H)"}
    assert skipped["other_gesture"] == 5 * 2 * (2 + 1)
    assert {r.room for r in records} == {1, 2}
    assert all(r.torso == 1 for r in records) and by_key


def Path_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def test_read_bvp_layout_padding_and_cropping(bvp_root, tmp_path):
    root, files = bvp_root
    path, bvp = next((p, b) for p, b in files.items() if b.shape[2] == 13)
    x = widar.read_bvp(path)
    assert x.shape == (22, 20, 20) and x.dtype == np.float32
    assert np.allclose(x[:13], np.transpose(bvp, (2, 0, 1)).astype(np.float32)) and not x[13:].any()
    long = write_bvp(tmp_path / "user1-1-1-1-1.mat", steps=30, value=1.0)
    assert np.array_equal(widar.read_bvp(tmp_path / "user1-1-1-1-1.mat"), np.transpose(long[:, :, :22], (2, 0, 1))
                          .astype(np.float32))


def test_read_bvp_errors(tmp_path):
    savemat(str(tmp_path / "a.mat"), {"other": np.zeros((20, 20, 3))})
    with pytest.raises(DatasetFormatError, match="no variable 'velocity_spectrum_ro'"):
        widar.read_bvp(tmp_path / "a.mat")
    savemat(str(tmp_path / "b.mat"), {widar.BVP_VARIABLE: np.zeros((30, 20, 3))})
    with pytest.raises(DatasetFormatError, match=r"expected \(20, 20, T\)"):
        widar.read_bvp(tmp_path / "b.mat")
    (tmp_path / "c.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetFormatError, match="c.mat"):
        widar.read_bvp(tmp_path / "c.mat")
    with pytest.raises(DatasetNotFoundError, match="no <date>-VS folders"):
        widar.scan_widar(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="not found"):
        widar.scan_widar(tmp_path / "missing")


def test_cross_room_cross_user_contexts(bvp_root):
    root, files = bvp_root
    contexts = widar.load_widar_contexts(root, seed=1, test_users=2)
    assert set(contexts) == {"room1", "room2"}
    test_users = set(contexts["room1"].speaker_ids["test"])
    assert len(test_users) == 2 and test_users == set(contexts["room2"].speaker_ids["test"])
    for context in contexts.values():
        train_users = set(context.speaker_ids["train"]) | set(context.speaker_ids["val"])
        assert train_users.isdisjoint(test_users)
        assert context.features["train"].shape[1:] == (22, 20, 20)
        for split in ("train", "val", "test"):
            assert set(context.speakers[split].tolist()) == set(context.speaker_ids[split])
    n1 = sum(len(c) for c in contexts["room1"].labels.values())
    assert n1 == 5 * 4 * 2  # 5 users x 4 benchmark gestures x 2 repetitions in room 1
    splits = load_dataset("widar", root, seed=1, test_users=2)
    assert splits.num_classes == 6 and splits.input_shape == (22, 20, 20)
    assert len(splits.test) == len(contexts["room1"].labels["test"])


def test_missing_room_is_an_error(bvp_root):
    root, _ = bvp_root
    with pytest.raises(DatasetNotFoundError, match="room"):
        widar.load_widar_contexts(root, rooms=(1, 3))
