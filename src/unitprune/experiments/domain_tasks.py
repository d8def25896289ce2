"""The tasks of the domain-shift study: where the contexts come from.

A task has ``name`` and ``model`` (a Table-1 architecture), ``contexts()`` (``{name:
SpeechContext}``), ``splits(train, test=None)`` (:class:`unitprune.data.DatasetSplits` with train /
val of ``train`` and the test split of ``test``, standardised with ``train``'s statistics) and
``describe(contexts)``. Tasks are small picklable dataclasses (worker processes receive them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.synth_speech import SynthSpeechConfig, context_splits, load_synth_speech_contexts

__all__ = ["KWSDomainTask", "WidarDomainTask"]


@dataclass(frozen=True)
class KWSDomainTask:
    """Keyword spotting on the synthesized speech set: context A (room A) and B (room B), disjoint speakers.

    ``val_fraction`` / ``test_fraction``: share of a context's speakers held out for validation (of
    the speakers left after the test split) and test; see
    :func:`unitprune.data.synth_speech.load_synth_speech_contexts`.
    """

    data_root: str = "data/synth_speech"
    synth: SynthSpeechConfig = field(default_factory=SynthSpeechConfig)
    seed: int = 0
    progress: bool = False
    val_fraction: float = 0.1
    test_fraction: float = 0.15
    name: str = "synth_speech"
    model: str = "kws"

    def __post_init__(self) -> None:
        for label, value in (("val_fraction", self.val_fraction), ("test_fraction", self.test_fraction)):
            if not 0.0 < value < 1.0:
                raise ValueError(f"KWSDomainTask.{label} must be in (0, 1), got {value}")

    def contexts(self):
        return load_synth_speech_contexts(self.data_root, seed=self.seed, config=self.synth, progress=self.progress,
                                          val_fraction=self.val_fraction, test_fraction=self.test_fraction)

    def splits(self, train, test=None):
        return context_splits(train, test, name=self.name)

    def describe(self, contexts) -> dict:
        return {name: f"room {c.room.name} (RT60 {c.room.rt60:g} s, noise {'/'.join(c.room.noises)}, SNR "
                      f"{c.room.snr_db[0]:g}-{c.room.snr_db[1]:g} dB), speakers train/val/test "
                      f"{len(c.speaker_ids['train'])}/{len(c.speaker_ids['val'])}/{len(c.speaker_ids['test'])}, "
                      f"clips {len(c.labels['train'])}/{len(c.labels['val'])}/{len(c.labels['test'])}"
                for name, c in contexts.items()}


@dataclass(frozen=True)
class WidarDomainTask:
    """Widar3.0 body-velocity profiles from a user's folder (:mod:`unitprune.data.widar`)."""

    data_root: str = "data/widar"
    seed: int = 0
    name: str = "widar"
    model: str = "widar"

    def contexts(self):
        from ..data.widar import load_widar_contexts

        return load_widar_contexts(self.data_root, seed=self.seed)

    def splits(self, train, test=None):
        from ..data.widar import GESTURES

        return context_splits(train, test, name=self.name, class_names=GESTURES,
                              features="Widar3.0 BVP (22 x 20 x 20), see unitprune.data.widar")

    def describe(self, contexts) -> dict:
        return {name: f"room {c.room.name}, users train/val/test {c.speaker_ids['train']}/{c.speaker_ids['val']}/"
                      f"{c.speaker_ids['test']}, samples {len(c.labels['train'])}/{len(c.labels['val'])}/"
                      f"{len(c.labels['test'])}"
                for name, c in contexts.items()}
