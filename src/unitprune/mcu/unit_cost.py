"""Which UnIT convolution kernel a layer should run on an MCU: a cycle model of the dense, the
per-position UnIT (``unit_conv2d_unit_s8``), the skip-free UnIT (``unit_conv2d_unit_skipfree_s8``)
and the sparse UnIT (``unit_conv2d_unit_sparse_s8``: stored weights, per-row lists) convolutions,
per target, from counts of what each kernel does on calibration inputs.

The counts (:class:`ConvWork`, per sample) come from the layer and its inputs alone: MACs,
outputs, output rows, weights; for the per-position kernel its compares (positions x nonzero
weights) and kept multiplies; for the skip-free kernel the inputs it sorts, its nonzero-weight
taps that visit a list, the entries visited and the kept ones among them; for the sparse kernel
its sorted rows, its stored weights per block of accumulator rows, the input rows in their
windows, the rows it visits and the entries it visits. A kernel's predicted
cycles are a linear function of its counts, with per-target coefficients (:data:`COEFFICIENTS`)
fitted by non-negative least squares to cycles measured in the simulators
(``benchmarks/unit_kernels_mcu.py --fit``, which prints this table). tests/test_mcu_unit_kernels.py
checks the predictions against measured cycles on other inputs and geometries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from .qmodel import QConv

#: Kernels the model ranks.
CONV_KERNELS = ("dense", "unit", "skipfree", "sparse")
#: The counts each kernel's cycles are modelled on ("one": a constant per call).
FEATURES = {
    "dense": ("one", "macs", "outputs", "output_rows", "dense_runs"),
    "unit": ("one", "weights", "tested", "kept", "outputs", "tap_rows"),
    "skipfree": ("one", "weights", "inputs", "channels", "list_taps", "visits", "kept", "outputs"),
    "sparse": ("one", "inputs", "sort_rows", "record_blocks", "record_rows", "row_visits", "row_entries", "kept",
               "outputs", "strided_records", "strided_entries"),
}


@dataclass(frozen=True)
class ConvWork:
    """What the kernels do on one sample (means over the calibration samples)."""

    one: float
    macs: float
    outputs: float
    output_rows: float  # O * OH
    weights: float  # O * C/groups * KH * KW
    tap_rows: float  # per nonzero weight with tau < 128, the output rows its tap reaches (row loops)
    tested: float  # per nonzero weight with tau < 128, the output positions its tap reaches (tests)
    compares: float  # positions x nonzero weights (the per-position kernel's counter)
    kept: float  # multiplies kept (|x| > tau, w != 0)
    inputs: float  # C * H * W (sorted per sample)
    channels: float  # C (the per-channel bucket tables)
    list_taps: float  # nonzero weights with tau < 128 whose list has an entry above tau
    visits: float  # list entries visited (kept + rejected by the window)
    # the sparse kernel (unit_conv2d_unit_sparse_s8); 0 in results measured before it existed
    sort_rows: float = 0.0  # C * H (rows counting-sorted per sample)
    record_blocks: float = 0.0  # stored weights x blocks of accumulator rows
    record_rows: float = 0.0  # per stored weight with tau < 128, the output rows whose input row is inside
    row_visits: float = 0.0  # of those, the rows with at least one entry above tau
    row_entries: float = 0.0  # row-list entries visited (kept + rejected by the column test)
    strided_records: float = 0.0  # record_blocks of a layer with stride_y > 1 (two divisions per record's row range)
    strided_entries: float = 0.0  # row_entries of a layer with stride_x > 1 (the C loop on AVR)
    # the dense kernel's runs (unit_conv2d_dense_s8: per output row, one per column whose field the
    # left/right padding clips, the interior in runs of at most 255); 0 in results measured before it
    dense_runs: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def conv_work(op: QConv, x: np.ndarray) -> ConvWork:
    """The counts of ``op`` (with its ``tau``) on ``x`` (N, C, H, W) int8, per sample."""
    from . import reference

    n = x.shape[0]
    x4 = x.reshape(n, op.in_channels, op.in_height, op.in_width)
    weight, tau = op.weight, op.tau.astype(np.int64)
    positions = op.out_height * op.out_width
    _, counts = reference._conv(replace(op, unit_kernel="unit"), x4, "unit")
    live = (weight != 0) & (tau < 128)
    reach = reference.skipfree_reach(op, x4)  # [n, live taps]
    rows = _reach(op.out_height, op.in_height, op.kernel_height, op.stride[0], op.dilation[0], op.padding[0])
    cols = _reach(op.out_width, op.in_width, op.kernel_width, op.stride[1], op.dilation[1], op.padding[2])
    live_per_tap = live.sum(axis=(0, 1))  # [KH, KW]
    tap_rows = float((live_per_tap * rows[:, None] * (cols[None, :] > 0)).sum())
    tested = float((live_per_tap * rows[:, None] * cols[None, :]).sum())
    from .unit_plan import unit_sparse_block_rows

    row_entries, row_visits = reference.rowlists_reach(op, x4)
    blocks = -(-op.out_height // unit_sparse_block_rows(op))
    ky_live = np.nonzero(live)[2]
    window_rows = _reach(op.out_height, op.in_height, op.kernel_height, op.stride[0], op.dilation[0], op.padding[0])
    return ConvWork(
        dense_runs=float(op.out_channels * op.out_height * _dense_runs_per_row(op)),
        sort_rows=float(op.in_channels * op.in_height), record_blocks=float(np.count_nonzero(weight) * blocks),
        record_rows=float(window_rows[ky_live].sum()), row_visits=float(row_visits.sum()) / n,
        row_entries=float(row_entries.sum()) / n,
        strided_records=float(np.count_nonzero(weight) * blocks) if op.stride[0] != 1 else 0.0,
        strided_entries=float(row_entries.sum()) / n if op.stride[1] != 1 else 0.0,
        one=1.0, macs=float(counts.dense) / n, outputs=float(op.out_channels * positions),
        output_rows=float(op.out_channels * op.out_height), weights=float(weight.size), tap_rows=tap_rows,
        tested=tested,
        compares=float(positions * np.count_nonzero(weight)), kept=float(counts.executed) / n,
        inputs=float(op.in_channels * op.in_height * op.in_width), channels=float(op.in_channels),
        list_taps=float((reach > 0).sum()) / n, visits=float(reach.sum()) / n)


def _dense_runs_per_row(op: QConv) -> int:
    """Runs of one output row of unit_conv2d_dense_s8: the columns whose whole kernel row lies inside
    the input ([inner_first, inner_end)) in runs of at most 255, every other column a run of one."""
    span = (op.kernel_width - 1) * op.dilation[1]
    first = -(-op.padding[2] // op.stride[1])
    end = (op.in_width - 1 + op.padding[2] - span) // op.stride[1] + 1
    end = min(end, op.out_width)
    inner = max(0, end - first)
    return op.out_width - inner + -(-inner // 255)


def _reach(out: int, size: int, kernel: int, stride: int, dilation: int, pad: int) -> np.ndarray:
    """Per kernel index k of one axis, the outputs whose input o*stride + k*dilation - pad is inside."""
    o = np.arange(out)
    return np.array([np.count_nonzero((o * stride + k * dilation - pad >= 0) & (o * stride + k * dilation - pad < size))
                     for k in range(kernel)], dtype=np.int64)


#: Cycles per count, per target and kernel: fitted by ``python benchmarks/unit_kernels_mcu.py --fit`` (seed 0,
#: -O2, avr-gcc 5.4 / clang-14 for MSP430; the conv2 shape at 9 thresholds, the pruned conv2_pruned and conv1_like,
#: the deep conv3_like and 4 edge geometries). The MSP430 dense rows are refitted with the dense kernel's output
#: stage on its threshold tables (the export gives the tables to dense convolutions where the flash allows,
#: docs/fixed_point.md); the dense rows of every target are refitted (``--fit``, their dense coefficients only)
#: on the conv set-up without divisions for a stride or group count of 1 (unit_internal_geometry.h).
COEFFICIENTS: dict[str, dict[str, dict[str, float]]] = {
    "avr": {
        "dense": {
            "one": 12576.67,
            "macs": 11.91,
            "outputs": 82.92,
            "output_rows": 107.24,
            "dense_runs": 1209.41
        },
        "unit": {
            "one": 27380.52,
            "weights": 227.66,
            "tested": 24.87,
            "kept": 36.66,
            "outputs": 287.56,
            "tap_rows": 13.63
        },
        "skipfree": {
            "one": 37259.27,
            "weights": 41.41,
            "inputs": 237.23,
            "channels": 27.63,
            "list_taps": 203.73,
            "visits": 16.43,
            "kept": 27.9,
            "outputs": 203.89
        },
        "sparse": {
            "one": 44410.45,
            "inputs": 64.74,
            "sort_rows": 0.0,
            "record_blocks": 630.99,
            "record_rows": 0.0,
            "row_visits": 66.7,
            "row_entries": 0.0,
            "kept": 37.29,
            "outputs": 163.94,
            "strided_records": 1505.34,
            "strided_entries": 11.01
        }
    },
    "msp430": {
        "dense": {  # the output stage by threshold tables (requant_table), as the export gives dense convs
            "one": 14616.86,
            "macs": 18.46,
            "outputs": 75.32,
            "output_rows": 0.0,
            "dense_runs": 1295.7
        },
        "unit": {
            "one": 35372.65,
            "weights": 234.77,
            "tested": 24.24,
            "kept": 89.0,
            "outputs": 444.01,
            "tap_rows": 54.96
        },
        "skipfree": {
            "one": 32483.07,
            "weights": 43.54,
            "inputs": 177.74,
            "channels": 11500.93,
            "list_taps": 140.71,
            "visits": 13.13,
            "kept": 41.73,
            "outputs": 466.61
        },
        "sparse": {
            "one": 56912.49,
            "inputs": 218.63,
            "sort_rows": 66.98,
            "record_blocks": 848.0,
            "record_rows": 0.0,
            "row_visits": 81.53,
            "row_entries": 0.0,
            "kept": 47.88,
            "outputs": 270.67,
            "strided_records": 1774.28,
            "strided_entries": 0.0
        }
    },
    "msp430-hwmult": {
        "dense": {  # the output stage by threshold tables, as on msp430
            "one": 13352.39,
            "macs": 13.35,
            "outputs": 83.04,
            "output_rows": 0.0,
            "dense_runs": 1119.18
        },
        "unit": {
            "one": 26695.62,
            "weights": 251.42,
            "tested": 25.27,
            "kept": 39.87,
            "outputs": 247.38,
            "tap_rows": 35.81
        },
        "skipfree": {
            "one": 32122.09,
            "weights": 52.79,
            "inputs": 92.98,
            "channels": 11288.34,
            "list_taps": 111.55,
            "visits": 20.16,
            "kept": 22.45,
            "outputs": 299.11
        },
        "sparse": {
            "one": 55656.13,
            "inputs": 80.14,
            "sort_rows": 0.0,
            "record_blocks": 593.75,
            "record_rows": 0.0,
            "row_visits": 99.41,
            "row_entries": 0.0,
            "kept": 36.67,
            "outputs": 138.33,
            "strided_records": 1920.69,
            "strided_entries": 5.25
        }
    }
}


#: ``unit_conv2d_sparse_tau_s8`` (UnIT on the stored weights, tau in each record) against the static-sparse
#: ``unit_conv2d_sparse_s8`` on the same layer, per target: cycles per stored product kept / skipped by the
#: test more (negative: fewer) than the plain run's, from benchmarks/sparse_tau_mcu.py (the runs alone; MSP430:
#: 28.1 / 15.0 against 25.0, with the multiplier 23.3 / 15.3 against 18.8), and per stored product of a field
#: the padding clips and per input (the scan for negatives), non-negative least squares on the layers of
#: ``benchmarks/sparse_tau_layers_mcu.py`` (whole exported layers, every prediction within 2.2 %). AVR has
#: none: its test does not pay (the AVR build runs the C loop).
SPARSE_TAU_DELTA: dict[str, dict[str, float]] = {
    "msp430": {"kept": 3.1, "skipped": -10.0, "clipped_pairs": 56.8, "inputs": 19.3},
    "msp430-hwmult": {"kept": 4.5, "skipped": -3.5, "clipped_pairs": 21.87, "inputs": 15.14},
}


def predict_sparse_tau(work: ConvWork, sparse_cycles: float, clipped_pairs: float, target: str) -> float:
    """Predicted cycles of ``unit_conv2d_sparse_tau_s8`` on ``target`` (:data:`SPARSE_TAU_DELTA`) for one
    sample of ``work``, from the static-sparse kernel's predicted ``sparse_cycles`` on the layer and its
    ``clipped_pairs`` (:func:`unitprune.mcu.zeroact_plan.zeroact_work`)."""
    delta = SPARSE_TAU_DELTA[target]
    return float(sparse_cycles + delta["kept"] * work.kept + delta["skipped"] * (work.compares - work.kept)
                 + delta["clipped_pairs"] * clipped_pairs + delta["inputs"] * work.inputs)


#: Linear kernels the model ranks under the ``unit`` variant: the unsorted one (``unit_linear_unit_*_s8``,
#: every weight of a live input's column tested) and the early exit (``unit_linear_unit_sorted_*_s8``).
LINEAR_KERNELS = ("unit", "sorted")
LINEAR_FEATURES = {
    "unit": ("one", "inputs", "nonzero_inputs", "tested", "kept", "outputs"),
    "sorted": ("one", "inputs", "nonzero_inputs", "live_inputs", "kept", "outputs"),
}


@dataclass(frozen=True)
class LinearWork:
    """What the UnIT linear kernels do on one sample (means over the calibration samples)."""

    one: float
    inputs: float  # in (one zero test each)
    nonzero_inputs: float  # quotients computed
    live_inputs: float  # nonzero inputs with t_i < 128 (columns walked)
    tested: float  # live inputs x out (the unsorted kernel's compares)
    kept: float
    outputs: float

    def to_dict(self) -> dict:
        return asdict(self)


def linear_work(op, x: np.ndarray, method: str) -> LinearWork:
    """The counts of the UnIT linear ``op`` (QLinear) on ``x`` (N, in) int8 with the ``method`` quotient."""
    from . import reference

    n = x.shape[0]
    x2 = np.asarray(x, dtype=np.int64).reshape(n, op.in_features)
    quotients = reference.linear_quotients(op, np.abs(x2), method)
    live = (x2 != 0) & (quotients < 128)
    kept = int(reference.linear_keep(op, x2, "unit", method).sum())
    return LinearWork(one=1.0, inputs=float(op.in_features), nonzero_inputs=float(np.count_nonzero(x2)) / n,
                      live_inputs=float(live.sum()) / n, tested=float(live.sum() * op.out_features) / n,
                      kept=kept / n, outputs=float(op.out_features))


#: Cycles per count of the UnIT linear kernels, per target: fitted by ``python benchmarks/unit_kernels_mcu.py
#: --fit`` (the 256 -> 32 and 40 -> 9 layers at 4 thresholds each, bit-shift quotients).
LINEAR_COEFFICIENTS: dict[str, dict[str, dict[str, float]]] = {
    "avr": {
        "unit": {
            "one": 3984.2,
            "inputs": 0.0,
            "nonzero_inputs": 0.0,
            "tested": 26.75,
            "kept": 25.51,
            "outputs": 352.78
        },
        "sorted": {
            "one": 0.0,
            "inputs": 65.69,
            "nonzero_inputs": 0.0,
            "live_inputs": 72.36,
            "kept": 55.08,
            "outputs": 527.68
        }
    },
    "msp430": {
        "unit": {
            "one": 8160.34,
            "inputs": 0.0,
            "nonzero_inputs": 0.0,
            "tested": 41.3,
            "kept": 68.69,
            "outputs": 537.37
        },
        "sorted": {
            "one": 0.0,
            "inputs": 145.63,
            "nonzero_inputs": 0.0,
            "live_inputs": 112.09,
            "kept": 92.13,
            "outputs": 826.89
        }
    },
    "msp430-hwmult": {
        "unit": {
            "one": 0.0,
            "inputs": 6.84,
            "nonzero_inputs": 0.0,
            "tested": 27.57,
            "kept": 30.88,
            "outputs": 1283.56
        },
        "sorted": {
            "one": 0.0,
            "inputs": 143.09,
            "nonzero_inputs": 0.0,
            "live_inputs": 62.28,
            "kept": 44.82,
            "outputs": 696.2
        }
    }
}


#: Cycles of ``unit_linear_sparse_s8`` (the layer exact over its nonzero weights, a UnIT plan's ``static``
#: linear), per target: ``one + nonzeros * stored weights + outputs * out_features``, fitted by
#: non-negative least squares (relative error) to the simulators' cycles of the 256 -> 10 and 128 -> 32
#: layers at 50 % and 85 % zero weights in docs/results/kernels_floor/kernels_s8_layers.json
#: (``benchmarks/kernels_s8_mcu.py --layers``; every point within 0.2 %).
LINEAR_STATIC_COEFFICIENTS: dict[str, dict[str, float]] = {
    "avr": {"one": 547.99, "nonzeros": 26.02, "outputs": 836.76},
    "msp430": {"one": 741.19, "nonzeros": 24.27, "outputs": 845.56},
    "msp430-hwmult": {"one": 596.0, "nonzeros": 17.56, "outputs": 598.92},
}


def predict_linear_static(op, target: str) -> float:
    """Predicted cycles of the linear ``op`` (QLinear) exact on ``unit_linear_sparse_s8`` on ``target``
    (data-independent: a zero activation is multiplied)."""
    table = LINEAR_STATIC_COEFFICIENTS[target]
    return float(table["one"] + table["nonzeros"] * np.count_nonzero(op.weight) + table["outputs"] * op.out_features)


def predict_linear(work: LinearWork, target: str, kernel: str, coefficients=None) -> float:
    """Predicted cycles of the UnIT linear ``kernel`` on ``target`` for one sample of ``work``."""
    table = (coefficients or LINEAR_COEFFICIENTS)[target][kernel]
    values = work.to_dict()
    return float(sum(table[name] * values[name] for name in LINEAR_FEATURES[kernel]))


def choose_linear(work: LinearWork, target: str, coefficients=None) -> tuple[str, dict[str, float]]:
    """The UnIT linear kernel with the fewest predicted cycles, and every prediction."""
    predictions = {kernel: predict_linear(work, target, kernel, coefficients) for kernel in LINEAR_KERNELS}
    return min(predictions, key=predictions.get), predictions


def fit_linear(samples: list[tuple[LinearWork, float]], kernel: str) -> dict[str, float]:
    """Non-negative least-squares coefficients of a linear ``kernel`` (as :func:`fit`)."""
    from scipy.optimize import nnls

    names = LINEAR_FEATURES[kernel]
    matrix = np.array([[work.to_dict()[name] for name in names] for work, _ in samples], dtype=float)
    cycles = np.array([c for _, c in samples], dtype=float)
    solution, _ = nnls(matrix / cycles[:, None], np.ones_like(cycles))
    return {name: float(value) for name, value in zip(names, solution)}


def predict(work: ConvWork, target: str, kernel: str, coefficients=None) -> float:
    """Predicted cycles of ``kernel`` on ``target`` for one sample of ``work``."""
    table = (coefficients or COEFFICIENTS)[target][kernel]
    values = work.to_dict()
    return float(sum(table[name] * values[name] for name in FEATURES[kernel]))


def choose(work: ConvWork, target: str, kernels=CONV_KERNELS, coefficients=None) -> tuple[str, dict[str, float]]:
    """The kernel with the fewest predicted cycles, and every prediction."""
    predictions = {kernel: predict(work, target, kernel, coefficients) for kernel in kernels}
    return min(predictions, key=predictions.get), predictions


def fit(samples: list[tuple[ConvWork, float]], kernel: str) -> dict[str, float]:
    """Non-negative least-squares coefficients of ``kernel`` from (work, measured cycles) pairs,
    each equation weighted by 1 / cycles (relative error)."""
    from scipy.optimize import nnls

    names = FEATURES[kernel]
    matrix = np.array([[work.to_dict()[name] for name in names] for work, _ in samples], dtype=float)
    cycles = np.array([c for _, c in samples], dtype=float)
    solution, _ = nnls(matrix / cycles[:, None], np.ones_like(cycles))
    return {name: float(value) for name, value in zip(names, solution)}
