"""The tasks of the domain-shift study: where the contexts come from.

A task has ``name`` and ``model`` (a Table-1 architecture), ``contexts()`` (``{name:
SpeechContext}``), ``splits(train, test=None)`` (:class:`unitprune.data.DatasetSplits` with train /
val of ``train`` and the test split of ``test``, standardised with ``train``'s statistics) and
``describe(contexts)``. Tasks are small picklable dataclasses (worker processes receive them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.synth_speech import DEFAULT_VARIANTS, SynthSpeechConfig, context_splits, load_synth_speech_contexts

__all__ = ["KWSDomainTask", "WidarDomainTask", "DOMAIN_VARIANTS", "DOMAIN_DATA_ROOT", "domain_synth_config"]

#: espeak-ng variants of the domain-shift speech set: the KWS demo's 12 (m1-m7, f1-f5) and 12 more
#: (espeak-ng's named variants), so 16 voices x 24 variants = 384 speakers. Each context gets half
#: of them (192: twice the demo's per-context speakers at the demo's default), enough for a
#: validation split of ~30 speakers and training splits of ~130.
DOMAIN_VARIANTS = DEFAULT_VARIANTS + ("adam", "Alex", "Andy", "Annie", "aunty", "belinda", "david", "edward", "john",
                                      "linda", "max", "steph")
#: Default cache of the domain-shift speech set (its own folder: the KWS demo's cache has other settings).
DOMAIN_DATA_ROOT = "data/synth_speech_domain"


def domain_synth_config(**overrides) -> SynthSpeechConfig:
    """The synthesis settings of the domain-shift study: :class:`SynthSpeechConfig` with ``DOMAIN_VARIANTS``."""
    return SynthSpeechConfig(**dict({"variants": DOMAIN_VARIANTS}, **overrides))


@dataclass(frozen=True)
class KWSDomainTask:
    """Keyword spotting on the synthesized speech set: context A (room A) and B (room B), disjoint speakers.

    ``val_fraction`` / ``test_fraction``: share of a context's speakers held out for validation (of
    the speakers left after the test split) and test; see
    :func:`unitprune.data.synth_speech.load_synth_speech_contexts`. Validation is where thresholds
    are calibrated and every setting is chosen, so it is larger than the demo's (0.2 vs 0.1: with
    the default 384 speakers, 33 speakers and ~800 clips per context, 0.13 accuracy points a clip).
    """

    data_root: str = DOMAIN_DATA_ROOT
    synth: SynthSpeechConfig = field(default_factory=domain_synth_config)
    seed: int = 0
    progress: bool = False
    val_fraction: float = 0.2
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
