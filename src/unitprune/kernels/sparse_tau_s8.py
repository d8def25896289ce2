"""The tables of ``unit_conv2d_sparse_tau_s8`` (UnIT on static-sparse weights): the static-sparse
layout of :mod:`unitprune.kernels.sparse_s8` (per output channel its count of nonzero weights, uint8
taps ``{ky, kx}`` for a padded conv) with each record carrying its weight's UnIT threshold, an
export-time constant: int16 records ``{offset, tau + 1, weight}`` (``csrc/unit_kernels_s8.h``).
"""

from __future__ import annotations

import numpy as np

from .sparse_s8 import SparseTables, conv_sparse_tables

__all__ = ["RECORD_FIELDS", "conv_sparse_tau_tables"]

#: int16 fields of one record: offset, tau + 1, weight.
RECORD_FIELDS = 3


def conv_sparse_tau_tables(weight, tau, in_height: int, in_width: int, dilation=(1, 1), padded: bool = False,
                           what: str = "conv") -> SparseTables:
    """The tables of a conv's int8 ``weight [O, C/groups, KH, KW]`` with its uint8 ``tau`` (same shape)
    on an ``in_height x in_width`` input: the records of :func:`conv_sparse_tables` (same order),
    ``{offset, tau + 1, weight}``."""
    weight = np.asarray(weight)
    tau = np.asarray(tau)
    if tau.shape != weight.shape:
        raise ValueError(f"{what}: tau must have the weight's shape {weight.shape}, got {tau.shape}")
    base = conv_sparse_tables(weight, in_height, in_width, dilation, padded, what)
    flat_tau = tau.reshape(weight.shape[0], -1)[np.nonzero(weight.reshape(weight.shape[0], -1))]
    records = np.stack([base.records[:, 0], flat_tau.astype(np.int16) + 1, base.records[:, 1]], axis=1)
    return SparseTables(base.nonzeros, np.ascontiguousarray(records.astype(np.int16)), base.taps)
