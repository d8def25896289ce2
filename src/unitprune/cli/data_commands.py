"""``unitprune data synth-speech``: generate (or check) the offline synthesized speech set."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["add_data_parser", "cmd_data"]


def add_data_parser(commands, formatter, add_common) -> None:
    """Register the ``data`` command on the ``commands`` sub-parsers."""
    data = commands.add_parser(
        "data", formatter_class=formatter, help="make offline data sets (synth-speech: keyword spotting)",
        description="synth-speech: synthesize the 12-class speech-commands stand-in with espeak-ng (deterministic "
                    "from --seed) into DATA_ROOT, with a manifest; an existing cache with the same settings is "
                    "reused, one with other settings is refused. Needs the Debian package espeak-ng.")
    add_common(data)
    data.add_argument("action", choices=("synth-speech",), help="what to make")
    data.add_argument("--data-root", default="data/synth_speech", help="cache folder (created; never overwritten)")
    data.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    add_synth_options(data)
    data.set_defaults(handler=cmd_data)


def add_synth_options(parser) -> None:
    """Options of what to synthesize (``data synth-speech``, ``demo --task kws``, ``domain-shift --task kws``)."""
    from ..data.synth_speech import DEFAULT_VARIANTS, DEFAULT_VOICES, SynthSpeechConfig

    defaults = SynthSpeechConfig()
    group = parser.add_argument_group("synthesized speech (espeak-ng)")
    group.add_argument("--voices", nargs="+", metavar="VOICE",
                       help=f"espeak-ng voices (default: {' '.join(DEFAULT_VOICES)})")
    group.add_argument("--variants", nargs="+", metavar="VARIANT",
                       help=f"espeak-ng variants (default: {' '.join(DEFAULT_VARIANTS)})")
    group.add_argument("--words", nargs="+", metavar="WORD", help="keywords (default: all ten)")
    group.add_argument("--repeats", type=int, default=defaults.repeats, help="clips per speaker and keyword")
    group.add_argument("--unknown-per-speaker", type=int, default=defaults.unknown_per_speaker,
                       help="_unknown_ clips per speaker")
    group.add_argument("--synth-workers", type=int, default=defaults.workers, help="generation processes")


def synth_config_from_args(args: argparse.Namespace):
    """The :class:`SynthSpeechConfig` given by the ``data`` options (also used by the KWS commands)."""
    from ..data.synth_speech import SynthSpeechConfig

    values = {"seed": args.seed, "repeats": args.repeats, "unknown_per_speaker": args.unknown_per_speaker,
              "workers": args.synth_workers}
    for name in ("voices", "variants", "words"):
        if getattr(args, name, None):
            values[name] = tuple(getattr(args, name))
    return SynthSpeechConfig(**values)


def cmd_data(args: argparse.Namespace) -> int:
    from ..data.synth_speech import MANIFEST, generate_synth_speech

    config = synth_config_from_args(args)
    root = Path(args.data_root)
    existed = (root / MANIFEST).is_file()
    t0 = time.perf_counter()
    cache = generate_synth_speech(root, config, progress=not args.no_progress)
    counts = cache.manifest["counts"]
    print(f"{'reused' if existed else 'generated'} {counts['clips']} clips of {counts['speakers']} speakers in {root} "
          f"({cache.manifest['espeak_ng_version']})")
    print("per class: " + ", ".join(f"{k} {v}" for k, v in counts["per_class"].items()))
    if existed:
        print(f"checked in {time.perf_counter() - t0:.1f} s (generated in {cache.manifest['generation_seconds']} s "
              f"with {cache.manifest['workers']} workers)")
    else:
        print(f"generation time: {cache.manifest['generation_seconds']} s with {config.workers} workers")
    print(f"manifest: {root / MANIFEST}")
    return 0
