"""The pooled term of the MCU kernel plans' cycle models: the cycles of a conv whose max-pool the
export takes on its accumulators (:mod:`unitprune.mcu.export.pooled_conv`: the dense kernel
``unit_conv2d_dense_pool_s8``, the static-sparse one ``unit_conv2d_sparse_pool_s8``) and of the
separate max-pool (``unit_maxpool2d_s8``) that every other conv kernel keeps, so a planner compares a
pooled kernel with an unpooled one on the same work: the conv and its pool.

The counts (:func:`pool_work`, means per sample) mirror the kernels' loops. A pooled kernel computes
the conv outputs its pool reads (``conv_outputs``: floor mode drops the rest), the stored weights of
each (``pairs`` over whole fields, ``clipped_pairs`` over fields the padding clips; the dense kernel
its ``macs`` and its ``clipped_outputs``, which take the per-column path), the pool window's best per
pooled output, and requantizes once per pooled output (``pooled_outputs``; the multiply only where
the window's best accumulator is > 0 under a ReLU, ``multiplied``, and the channels outside the fast
output stage again, ``multiplied_general``), per pooled row (``pooled_rows``) and per conv row
(``conv_rows``, the static-sparse kernel per nonzero channel and row inside the input: ``runs``) and
per output channel (``channels``: the dense kernel's set-up of its interior pooled rows). The
separate max-pool writes ``pooled_outputs`` in ``pooled_rows``: a 2x2 window by its own loop
(``square_outputs``), any other reading its ``general_inputs`` (``general_outputs``). Cycles are
linear in the counts with per-target coefficients (:data:`COEFFICIENTS`) fitted by non-negative least
squares to the simulators' exact cycles (``benchmarks/pooled_conv_mcu.py --fit`` prints the table;
tests/test_pool_cost.py checks predictions against measured cycles on other inputs).
"""

from __future__ import annotations

import numpy as np

from .qmodel import QConv

__all__ = ["COEFFICIENTS", "FEATURES", "pool_work", "pooled_cycles", "predict"]

#: The counts each kernel's cycles are modelled on ("one": a constant per call).
FEATURES = {
    "sparse_pool": ("one", "pairs", "clipped_pairs", "conv_outputs", "runs", "pooled_rows", "pooled_outputs",
                    "multiplied", "multiplied_general"),
    "dense_pool": ("one", "channels", "macs", "clipped_outputs", "conv_outputs", "conv_rows", "pooled_rows",
                   "pooled_outputs", "multiplied", "multiplied_general"),
    "maxpool": ("one", "pooled_rows", "square_outputs", "general_outputs", "general_inputs"),
}
#: Cycles per count, per target and kernel: benchmarks/pooled_conv_mcu.py --fit (NNLS on the
#: simulators' exact cycles of the layers there).
COEFFICIENTS: dict[str, dict[str, dict[str, float]]] = {
    "avr": {
        "sparse_pool": {"one": 8495.466, "pairs": 12.411, "clipped_pairs": 254.07, "conv_outputs": 24.187,
            "runs": 992.568, "pooled_rows": 0.0, "pooled_outputs": 0.0, "multiplied": 93.607,
            "multiplied_general": 79.626},
        "dense_pool": {"one": 48420.247, "channels": 5079.002, "macs": 10.231, "clipped_outputs": 339.708,
            "conv_outputs": 0.0, "conv_rows": 2412.256, "pooled_rows": 0.0, "pooled_outputs": 0.0, "multiplied": 15.094,
            "multiplied_general": 96.894},
        "maxpool": {"one": 613.002, "pooled_rows": 68.027, "square_outputs": 32.797, "general_outputs": 20.122,
            "general_inputs": 15.312},
    },
    "msp430": {
        "sparse_pool": {"one": 9173.669, "pairs": 23.91, "clipped_pairs": 272.199, "conv_outputs": 10.897,
            "runs": 669.757, "pooled_rows": 0.0, "pooled_outputs": 0.0, "multiplied": 486.537,
            "multiplied_general": 0.0},
        "dense_pool": {"one": 84111.916, "channels": 5492.946, "macs": 15.991, "clipped_outputs": 0.0,
            "conv_outputs": 0.0, "conv_rows": 2607.763, "pooled_rows": 0.0, "pooled_outputs": 0.0, "multiplied": 0.0,
            "multiplied_general": 11.706},
        "maxpool": {"one": 863.926, "pooled_rows": 64.019, "square_outputs": 42.826, "general_outputs": 30.193,
            "general_inputs": 25.403},
    },
    "msp430-hwmult": {
        "sparse_pool": {"one": 10361.132, "pairs": 17.61, "clipped_pairs": 260.59, "conv_outputs": 53.285,
            "runs": 563.208, "pooled_rows": 0.0, "pooled_outputs": 0.0, "multiplied": 30.827,
            "multiplied_general": 17.764},
        "dense_pool": {"one": 75533.388, "channels": 5105.361, "macs": 11.124, "clipped_outputs": 0.0,
            "conv_outputs": 0.0, "conv_rows": 2404.806, "pooled_rows": 0.0, "pooled_outputs": 0.0, "multiplied": 0.0,
            "multiplied_general": 6.479},
        "maxpool": {"one": 761.991, "pooled_rows": 50.268, "square_outputs": 43.717, "general_outputs": 31.348,
            "general_inputs": 24.932},
    },
}


def _whole_fields(op: QConv) -> np.ndarray:
    """Which conv outputs' fields lie wholly inside the input (bool [OH, OW])."""
    (sy, sx), (dy, dx) = op.stride, op.dilation
    top, _, left, _ = op.padding
    oy, ox = np.arange(op.out_height), np.arange(op.out_width)
    rows = (oy * sy - top >= 0) & (oy * sy - top + (op.kernel_height - 1) * dy < op.in_height)
    cols = (ox * sx - left >= 0) & (ox * sx - left + (op.kernel_width - 1) * dx < op.in_width)
    return rows[:, None] & cols[None, :]


def pool_work(op: QConv, x: np.ndarray, window: tuple[int, int]) -> dict[str, dict[str, float]]:
    """The counts (:data:`FEATURES`) of ``op`` pooled by a max-pool of ``window`` (= its stride) on
    int8 inputs ``x`` (N, C, H, W), per sample."""
    from .zeroact_plan import fast_output_stage, output_multiplies

    kh, kw = window
    n = x.shape[0]
    x4 = np.asarray(x).reshape(n, op.in_channels, op.in_height, op.in_width)
    ph, pw = op.out_height // kh, op.out_width // kw
    used_h, used_w = ph * kh, pw * kw
    whole = _whole_fields(op)[:used_h, :used_w]
    stored = int(np.count_nonzero(op.weight))
    used, inside = used_h * used_w, int(whole.sum())
    o = op.out_channels
    # a pooled output multiplies where its window's best accumulator does (the stage is monotone)
    multiplies = output_multiplies(op, x4)[:, :, :used_h, :used_w].reshape(n, o, ph, kh, pw, kw).any(axis=(3, 5))
    fast = fast_output_stage(op)
    multiplied = float(multiplies.sum()) / n
    multiplied_general = float(multiplies[:, ~fast].sum()) / n
    rows_inside = int(whole.any(axis=1).sum()) if whole.size else 0
    live_channels = int(np.count_nonzero(op.weight.reshape(o, -1).any(axis=1)))
    taps = op.in_channels // op.groups * op.kernel_height * op.kernel_width
    square = int(window == (2, 2))  # unit_maxpool2d_s8's own loop for a 2x2 window
    common = {"one": 1.0, "conv_outputs": float(o * used), "pooled_rows": float(o * ph),
              "pooled_outputs": float(o * ph * pw), "multiplied": multiplied, "multiplied_general": multiplied_general}
    return {
        "sparse_pool": {**common, "pairs": float(stored * inside), "clipped_pairs": float(stored * (used - inside)),
                        "runs": float(live_channels * rows_inside)},
        "dense_pool": {**common, "channels": float(o), "macs": float(o * taps * used),
                       "clipped_outputs": float(o * (used - inside)),
                       "conv_rows": float(o * used_h)},
        "maxpool": {"one": 1.0, "pooled_rows": float(o * ph), "square_outputs": float(o * ph * pw * square),
                    "general_outputs": float(o * ph * pw * (1 - square)),
                    "general_inputs": float(o * ph * pw * kh * kw * (1 - square))},
    }


def predict(work: dict[str, dict[str, float]], target: str) -> dict[str, float]:
    """Predicted cycles per sample of each kernel of ``work`` on ``target``."""
    if target not in COEFFICIENTS:
        raise ValueError(f"no pooled-conv cost model for target {target!r}; one of {', '.join(COEFFICIENTS)}")
    return {kernel: float(sum(COEFFICIENTS[target][kernel].get(name, 0.0) * value for name, value in counts.items()))
            for kernel, counts in work.items()}


def pooled_cycles(ops, index: int, x: np.ndarray, target: str) -> dict[str, float] | None:
    """The predicted cycles (:func:`predict`) of the conv ``ops[index]`` pooled with the max-pool after
    it, on its inputs ``x``, where a layer-by-layer export for ``target`` would pool it
    (:func:`unitprune.mcu.export.pooled_conv.pool_window`) and the model has the target; else None."""
    from .export.pooled_conv import pool_window

    window = pool_window(ops, index, target)
    if window is None or target not in COEFFICIENTS:
        return None
    return predict(pool_work(ops[index], x, window), target)
