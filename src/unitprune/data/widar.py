"""Widar3.0 body-velocity profiles (BVP) from a user's folder, with the cross-room / cross-user split.

Widar3.0 (Zheng et al., "Zero-Effort Cross-Domain Gesture Recognition with Wi-Fi", MobiSys 2019 /
TPAMI 2021) ships its BVP features as one MATLAB ``.mat`` file per gesture instance. unitprune
never downloads them: get ``BVP.zip`` from the dataset's site, unzip it, and pass the folder.

File format (as the dataset's README documents it):

* layout ``<root>/<date>-VS/6-link/<userN>/<file>.mat``; a few dates have no ``6-link`` level
  (``<root>/<date>-VS/<userN>/<file>.mat``); ``root`` may also be the folder holding ``BVP/``;
* each file holds one variable ``velocity_spectrum_ro``: float64 ``(20, 20, T)``, the velocity
  distribution over a 20 x 20 grid (x and y velocity in the body frame, -2..2 m/s) for ``T`` time
  steps at 10 Hz (T varies per instance, ~7-30);
* file name ``userN-a-b-c-d-<suffix>.mat``: ``a`` the gesture number, ``b`` the torso location,
  ``c`` the face orientation, ``d`` the repetition; the suffix holds the extraction parameters.
  The gesture number is local to the collection date (and for some dates to the user): it is
  resolved to a gesture name with the README's per-date tables (:data:`GESTURE_TABLES`).

Samples: the six gestures of the Widar3.0 benchmark (:data:`GESTURES`, horizontal drawing variants);
files of other gestures are skipped. Each BVP is cut / zero-padded at the end to ``T = 22`` steps
and laid out as ``(22, 20, 20)`` (time steps as channels: the Table-1 WiDaR model's input).

Split (the paper's section 4.2, from WiDaR's cross-room, cross-user protocol): ``test_users``
users (seeded, 3 of the 17) are held out; every room is a context whose train / val splits are the
other users' samples in that room (val: a seeded ``val_fraction``, stratified by gesture) and whose
test split is the held-out users' samples in that room. Training in one room and testing in the
other is then both cross-user and cross-room.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from .errors import DatasetFormatError, DatasetNotFoundError
from .splits import DatasetSplits, stratified_split

__all__ = ["GESTURES", "GESTURE_TABLES", "ROOM_OF_DATE", "ROOM_NAMES", "BVP_VARIABLE", "NUM_STEPS",
           "WidarRecord", "WidarRoom", "scan_widar", "read_bvp", "load_widar_contexts", "load_widar"]

logger = logging.getLogger(__name__)

BVP_VARIABLE = "velocity_spectrum_ro"
NUM_STEPS = 22
GRID = 20
#: The six benchmark gestures (class index order).
GESTURES = ("Push&Pull", "Sweep", "Clap", "Slide", "Draw-O(H)", "Draw-Zigzag(H)")

_PUSH, _SWEEP, _CLAP, _SLIDE = "Push&Pull", "Sweep", "Clap", "Slide"
_O_H, _Z_H, _N_H, _TRI_H, _RECT_H = "Draw-O(H)", "Draw-Zigzag(H)", "Draw-N(H)", "Draw-Triangle(H)", "Draw-Rectangle(H)"
_O_V, _Z_V, _N_V = "Draw-O(V)", "Draw-Zigzag(V)", "Draw-N(V)"
_DIGITS = {i: f"Draw-{i}" for i in range(10)}

#: Gesture number -> name per collection date (key ``"*"``: every user of that date), from the
#: Widar3.0 README.
GESTURE_TABLES: dict[str, dict[str, dict[int, str]]] = {
    "20181109": {"*": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _SLIDE, 5: _Z_V, 6: _N_V}},
    "20181112": {"*": {**{i: _DIGITS[i] for i in range(1, 10)}, 0: _DIGITS[0]}},
    "20181115": {"*": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _O_V, 5: _Z_V, 6: _N_V}},
    "20181117": {"*": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _O_V, 5: _Z_V, 6: _N_V}},
    "20181118": {"*": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _O_V, 5: _Z_V, 6: _N_V}},
    "20181121": {"*": {1: _SLIDE, 2: _O_H, 3: _Z_H, 4: _N_H, 5: _TRI_H, 6: _RECT_H}},
    "20181127": {"*": {1: _SLIDE, 2: _O_H, 3: _Z_H, 4: _N_H, 5: _TRI_H, 6: _RECT_H}},
    "20181128": {"*": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _O_H, 5: _Z_H, 6: _N_H}},
    "20181130": {"*": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _SLIDE, 5: _O_H, 6: _Z_H, 7: _N_H, 8: _TRI_H,
                       9: _RECT_H}},
    "20181204": {"*": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _SLIDE, 5: _O_H, 6: _Z_H, 7: _N_H, 8: _TRI_H,
                       9: _RECT_H}},
    "20181205": {"user2": {1: _O_H, 2: _Z_H, 3: _N_H, 4: _TRI_H, 5: _RECT_H},
                 "user3": {1: _SLIDE, 2: _O_H, 3: _Z_H, 4: _N_H, 5: _TRI_H, 6: _RECT_H}},
    "20181208": {"user2": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _SLIDE}, "user3": {1: _PUSH, 2: _SWEEP, 3: _CLAP}},
    "20181209": {"user2": {1: _PUSH},
                 "user6": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _SLIDE, 5: _O_H, 6: _Z_H}},
    "20181211": {"*": {1: _PUSH, 2: _SWEEP, 3: _CLAP, 4: _SLIDE, 5: _O_H, 6: _Z_H}},
}
#: Room of each collection date (1 classroom, 2 hall, 3 office), from the Widar3.0 README.
ROOM_OF_DATE = {"20181109": 1, "20181112": 1, "20181115": 1, "20181121": 1, "20181130": 1,
                "20181117": 2, "20181118": 2, "20181127": 2, "20181128": 2, "20181204": 2, "20181205": 2,
                "20181208": 2, "20181209": 2, "20181211": 3}
ROOM_NAMES = {1: "classroom", 2: "hall", 3: "office"}

_NAME = re.compile(r"^(user\d+)-(\d+)-(\d+)-(\d+)-(\d+)(?:-.*)?\.mat$")
_DATE_DIR = re.compile(r"^(\d{8})-VS$")
_HINT = ("Get BVP.zip from the Widar3.0 site (tns.thss.tsinghua.edu.cn/widar3.0), unzip it and pass the folder "
         "holding the <date>-VS folders (or its parent). unitprune never downloads data.")


@dataclass(frozen=True)
class WidarRecord:
    """One BVP file: where it is and what its name and folder say."""

    path: str
    date: str
    room: int
    user: str
    gesture: str
    torso: int
    face: int
    repetition: int


@dataclass(frozen=True)
class WidarRoom:
    """A room as a domain-shift context (``name``: ``room1`` ...)."""

    name: str
    description: str


def _date_dirs(root: Path) -> list[Path]:
    for base in (root, root / "BVP"):
        if base.is_dir():
            dirs = sorted(p for p in base.iterdir() if p.is_dir() and _DATE_DIR.match(p.name))
            if dirs:
                return dirs
    return []


def scan_widar(root: str | Path) -> tuple[list[WidarRecord], dict[str, int]]:
    """All BVP files of the six gestures under ``root`` (sorted) and counts of skipped files by reason."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"Widar3.0 BVP folder not found: {root}. {_HINT}")
    dates = _date_dirs(root)
    if not dates:
        raise DatasetNotFoundError(f"no <date>-VS folders (such as 20181109-VS) in {root} or {root / 'BVP'}. {_HINT}")
    records, skipped = [], {"bad_name": 0, "unknown_gesture": 0, "other_gesture": 0, "unknown_date": 0}
    for date_dir in dates:
        date = _DATE_DIR.match(date_dir.name).group(1)
        if date not in ROOM_OF_DATE:
            skipped["unknown_date"] += sum(1 for _ in date_dir.rglob("*.mat"))
            continue
        base = date_dir / "6-link" if (date_dir / "6-link").is_dir() else date_dir
        for user_dir in sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("user")):
            for path in sorted(user_dir.glob("*.mat")):
                match = _NAME.match(path.name)
                if match is None:
                    skipped["bad_name"] += 1
                    continue
                user, number, torso, face, repetition = match.groups()
                table = GESTURE_TABLES[date]
                gesture = (table.get(user) or table.get("*") or {}).get(int(number))
                if gesture is None:
                    skipped["unknown_gesture"] += 1
                elif gesture not in GESTURES:
                    skipped["other_gesture"] += 1
                else:
                    records.append(WidarRecord(str(path), date, ROOM_OF_DATE[date], user, gesture, int(torso),
                                               int(face), int(repetition)))
    if not records:
        raise DatasetNotFoundError(f"no BVP files of the gestures {', '.join(GESTURES)} under {root} "
                                   f"(skipped: {skipped}). {_HINT}")
    return records, skipped


def read_bvp(path: str | Path, steps: int = NUM_STEPS) -> np.ndarray:
    """One BVP file as float32 ``(steps, 20, 20)``: time steps first, cut or zero-padded at the end."""
    try:
        content = loadmat(str(path))
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5) files
        raise DatasetFormatError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; the Widar3.0 "
                                 f"release is v5/v7 (re-save with save(..., '-v7')): {exc}") from exc
    except (MatReadError, ValueError, OSError, TypeError) as exc:
        raise DatasetFormatError(f"cannot read {path} as a MATLAB .mat file: {exc}") from exc
    if BVP_VARIABLE not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DatasetFormatError(f"{path} has no variable {BVP_VARIABLE!r} (found {found})")
    bvp = np.asarray(content[BVP_VARIABLE])
    if bvp.ndim == 2 and bvp.shape == (GRID, GRID):  # a single time step saved without its third axis
        bvp = bvp[:, :, None]
    if bvp.ndim != 3 or bvp.shape[:2] != (GRID, GRID) or not np.issubdtype(bvp.dtype, np.number):
        raise DatasetFormatError(f"{path}: {BVP_VARIABLE} is {bvp.dtype} {bvp.shape}, expected (20, 20, T) numbers")
    if not np.all(np.isfinite(bvp)):
        raise DatasetFormatError(f"{path}: {BVP_VARIABLE} holds NaN or Inf")
    out = np.zeros((steps, GRID, GRID), dtype=np.float32)
    used = min(steps, bvp.shape[2])
    out[:used] = np.transpose(bvp[:, :, :used], (2, 0, 1))
    return out


def load_widar_contexts(root: str | Path, *, seed: int = 0, rooms: tuple[int, ...] = (1, 2), test_users: int = 3,
                        val_fraction: float = 0.1, steps: int = NUM_STEPS):
    """One :class:`unitprune.data.synth_speech.SpeechContext` per room (see the module docstring)."""
    from .synth_speech import SpeechContext

    records, skipped = scan_widar(root)
    if any(skipped.values()):
        logger.info("widar: skipped files %s", skipped)
    in_rooms = [r for r in records if r.room in rooms]
    missing = [room for room in rooms if not any(r.room == room for r in in_rooms)]
    if missing:
        raise DatasetNotFoundError(f"no BVP files of room(s) {missing} ({', '.join(ROOM_NAMES[m] for m in missing)}) "
                                   f"under {root}; rooms present: {sorted({r.room for r in records})}")
    users = sorted({r.user for r in in_rooms}, key=lambda u: int(u[4:]))
    # held-out users: preferably ones seen in every room, so each cross-room test has them
    everywhere = [u for u in users if all(any(r.user == u and r.room == room for r in in_rooms) for room in rooms)]
    pool = everywhere if len(everywhere) >= test_users else users
    if len(users) <= test_users:
        raise ValueError(f"widar: {len(users)} users in rooms {list(rooms)}, need more than test_users={test_users}")
    rng = np.random.default_rng([seed, 7])
    held_out = sorted(pool[i] for i in rng.choice(len(pool), size=test_users, replace=False))
    user_index = {u: i for i, u in enumerate(users)}
    contexts = {}
    for room in rooms:
        name = f"room{room}"
        own = [r for r in in_rooms if r.room == room]
        train_pool = [r for r in own if r.user not in held_out]
        test = [r for r in own if r.user in held_out]
        if not train_pool or not test:
            raise ValueError(f"widar: room {room} has {len(train_pool)} training and {len(test)} test samples")
        labels = np.array([GESTURES.index(r.gesture) for r in train_pool])
        keep, val = stratified_split(labels, val_fraction, seed)
        parts = {"train": [train_pool[i] for i in keep], "val": [train_pool[i] for i in val], "test": test}
        features, split_labels, speakers, speaker_ids = {}, {}, {}, {}
        for split, items in parts.items():
            features[split] = np.stack([read_bvp(r.path, steps) for r in items]) if items else \
                np.zeros((0, steps, GRID, GRID), np.float32)
            split_labels[split] = np.array([GESTURES.index(r.gesture) for r in items], dtype=np.int64)
            speakers[split] = np.array([user_index[r.user] for r in items], dtype=np.int64)
            speaker_ids[split] = sorted({user_index[r.user] for r in items})
        description = f"{ROOM_NAMES[room]}, dates {sorted({r.date for r in own})}"
        contexts[name] = SpeechContext(name, WidarRoom(name, description), speaker_ids, features, split_labels,
                                       speakers)
    return contexts


def load_widar(root: str | Path, *, seed: int = 0, room: int = 1, **kwargs) -> DatasetSplits:
    """WiDaR BVP of one room as :class:`DatasetSplits` ``(N, 22, 20, 20)``, 6 classes (held-out users as test)."""
    from .synth_speech import context_splits

    contexts = load_widar_contexts(root, seed=seed, rooms=(room,), **kwargs)
    return context_splits(contexts[f"room{room}"], name="widar", class_names=GESTURES,
                          features="Widar3.0 BVP (22 x 20 x 20), see unitprune.data.widar")
