"""MAC accounting: how many multiply-accumulates a layer skipped, and why.

See docs/semantics.md for the exact definition of each counter. All counts are Python ints
(exact, no wrap-around), summed over every sample of a forward pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

CAUSES = ("zero_weight", "zero_activation", "threshold", "executed")
OVERHEADS = ("compares", "divisions")
#: Every counter, in the order of the C struct ``unit_counts`` (unit_types.h) and of :class:`MacCounts`.
COUNT_FIELDS = ("dense", *CAUSES, *OVERHEADS)


@dataclass
class MacCounts:
    """Counters of one layer (or a sum of layers).

    ``dense = zero_weight + zero_activation + threshold + executed`` always holds.
    """

    dense: int = 0
    zero_weight: int = 0
    zero_activation: int = 0
    threshold: int = 0
    executed: int = 0
    compares: int = 0
    divisions: int = 0

    def __post_init__(self) -> None:
        for name in _FIELD_NAMES:  # a fixed tuple: dataclasses.fields() is slow on the per-layer hot path
            setattr(self, name, int(getattr(self, name)))

    @classmethod
    def from_ints(cls, dense: int, zero_weight: int, zero_activation: int, threshold: int, executed: int,
                  compares: int, divisions: int) -> "MacCounts":
        """Construct from values that are already Python ints, skipping the conversion of
        ``__init__`` (the per-layer, per-call hot path of the C backend)."""
        counts = object.__new__(cls)
        counts.__dict__.update(dense=dense, zero_weight=zero_weight, zero_activation=zero_activation,
                               threshold=threshold, executed=executed, compares=compares, divisions=divisions)
        return counts

    def __add__(self, other: "MacCounts") -> "MacCounts":
        if not isinstance(other, MacCounts):
            return NotImplemented
        return MacCounts.from_ints(self.dense + other.dense, self.zero_weight + other.zero_weight,
                                   self.zero_activation + other.zero_activation, self.threshold + other.threshold,
                                   self.executed + other.executed, self.compares + other.compares,
                                   self.divisions + other.divisions)

    @property
    def skipped(self) -> int:
        """Connections not multiplied, whatever the cause."""
        return self.dense - self.executed

    @property
    def skipped_fraction(self) -> float:
        """``skipped / dense`` (0.0 for an empty count)."""
        return self.skipped / self.dense if self.dense else 0.0

    def check(self) -> None:
        """Raise AssertionError if the causes do not add up to ``dense`` or any counter is negative."""
        values = self.to_dict()
        if any(value < 0 for value in values.values()):
            raise AssertionError(f"negative MAC counter in {values}")
        total = sum(values[cause] for cause in CAUSES)
        if total != self.dense:
            raise AssertionError(f"MAC causes add up to {total}, not dense={self.dense}: {values}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


_FIELD_NAMES = tuple(field.name for field in fields(MacCounts))
