"""MAC formulas for the operators torch's FlopCounterMode does not count, and the ones refused.

:mod:`unitprune.accounting` measures the MACs done outside UnIT layers with
:class:`~torch.utils.flop_counter.FlopCounterMode`. Its registry (torch 2.13) returns 0 for
several operators that do multiply-accumulate: the fused CPU kernels of ``nn.LSTM``
(``mkldnn_rnn_layer``), ``nn.Bilinear`` (``_trilinear``), the eval fast paths of
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` under ``no_grad``
(``_native_multi_head_attention``, ``_transformer_encoder_layer_fwd``), the CPU kernel of
``scaled_dot_product_attention``, matrix-vector and dot products (``mv``, ``addmv``, ``dot``,
``vdot``: ``x @ v`` with a 1-d ``v``), the int8 matrix products and a weighted ``EmbeddingBag``.
:data:`FORMULAS` gives each a count of its own (FlopCounterMode's unit: flops = 2 x MACs):

* a matrix product ``(m, k) @ (k, n)``: ``m*k*n`` MACs; a matrix-vector product ``m*k``; a dot product ``k``.
* ``mkldnn_rnn_layer`` (one layer and direction of an LSTM/GRU/RNN): per time step and sample,
  ``G*H*(I + H)`` MACs, ``G*H`` the rows of ``weight_ih`` (``G`` gates of ``H`` units), ``I`` the
  input size: the input and the hidden matrix-vector products. The elementwise gate products
  (``f*c``, ``o*tanh(c)``) are not MACs, as FlopCounterMode counts none of them either (its count
  of the unfused ``GRU``/``RNN``/cell kernels is the same matrix products, ``addmm``/``mm``).
* ``_trilinear(i1, i2, i3, ...)`` (``nn.Bilinear``: ``y[b,o] = sum_ij x1[b,i] W[o,i,j] x2[b,j]``):
  the outer product ``x1 x2^T`` once per sample (``B*I*J`` multiplies), then the products with the
  weight (``B*O*I*J``); in general the broadcast size of ``i1 * i3`` plus that of ``i1 * i2 * i3``.
* attention (``_native_multi_head_attention``, ``E`` = embed_dim, ``Lq``/``Lk`` the query/key
  lengths, ``B`` the batch): in-projections ``B*(Lq + 2*Lk)*E*E``, scores ``B*Lq*Lk*E``, weighted
  values ``B*Lq*Lk*E``, out-projection ``B*Lq*E*E`` (the same as the slow path's ``addmm``/``bmm``).
  ``_transformer_encoder_layer_fwd``: that (with ``Lq = Lk = L``) plus the feed-forward
  ``2*B*L*E*F`` (``F`` = dim_feedforward). ``scaled_dot_product_attention`` on CPU: FlopCounterMode's
  own ``sdpa_flop_count`` (scores and weighted values).
* ``EmbeddingBag`` with ``per_sample_weights``: one MAC per looked-up element (``N*D``); without
  weights it only adds (0).

Elementwise products (``x * y``, ``torch.outer``, ``torch.kron``, gates) are not MACs here, as in
FlopCounterMode. Operators that multiply but have no formula here (:data:`REFUSED`: linear
algebra solvers and decompositions, FFTs, ``cdist``) make the count fail with
:class:`UncountedOperatorError`; :mod:`unitprune.accounting` names the module that called them.
A total never silently misses work that this module knows about.
"""

from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import sdpa_flop_count

__all__ = ["FORMULAS", "REFUSED", "UncountedOperatorError", "counting_mapping"]

aten = torch.ops.aten


class UncountedOperatorError(ValueError):
    """An operator that multiplies and has no MAC formula (the message names it)."""


def _prod(shape) -> int:
    return math.prod(int(s) for s in shape)


def _mv(matrix, vector, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(matrix)


def _addmv(bias, matrix, vector, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(matrix)


def _dot(a, b, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(a)


def _int_mm(a, b, *args, out_shape=None, **kwargs) -> int:
    return 2 * int(a[0]) * int(a[1]) * int(b[1])


def _weight_int8pack_mm(a, weight, scales, *args, out_shape=None, **kwargs) -> int:
    return 2 * int(a[0]) * int(a[1]) * int(weight[0])  # weight is (n, k)


def _mkldnn_linear(x, weight, bias=None, *args, out_shape=None, **kwargs) -> int:
    return 2 * _prod(x[:-1]) * _prod(weight)


def _rnn_layer(x, w_ih, w_hh, b_ih, b_hh, hx, cx, reverse, batch_sizes, mode, hidden_size, num_layers,
               has_biases, bidirectional, batch_first, train, *args, out_shape=None, **kwargs) -> int:
    steps_times_batch = _prod(x[:-1])  # (T, B, I) or (B, T, I)
    return 2 * steps_times_batch * (_prod(w_ih) + _prod(w_hh))


def _broadcast_size(*shapes) -> int:
    return _prod(torch.broadcast_shapes(*[tuple(s) for s in shapes]))


def _expanded(shape, dims, rank: int) -> list[int]:
    out = list(shape)
    for d in sorted(dims):
        out.insert(d, 1)
    assert len(out) == rank
    return out


def _trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim, unroll_dim=1, *args, out_shape=None, **kwargs) -> int:
    rank = len(i1) + len(expand1)
    s1, s2, s3 = (_expanded(s, e, rank) for s, e in ((i1, expand1), (i2, expand2), (i3, expand3)))
    return 2 * (_broadcast_size(s1, s3) + _broadcast_size(s1, s2, s3))


def _attention_macs(batch: int, lq: int, lk: int, embed: int) -> int:
    return batch * (lq + 2 * lk) * embed * embed + 2 * batch * lq * lk * embed + batch * lq * embed * embed


def _sequence_dims(shape) -> tuple[int, int]:
    """(batch, length) of a (B, L, E) or unbatched (L, E) tensor."""
    return (int(shape[0]), int(shape[1])) if len(shape) == 3 else (1, int(shape[0]))


def _native_mha(query, key, value, embed_dim, num_head, *args, out_shape=None, **kwargs) -> int:
    batch, lq = _sequence_dims(query)
    _, lk = _sequence_dims(key)
    return 2 * _attention_macs(batch, lq, lk, int(embed_dim))


def _encoder_layer(src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias, use_gelu, norm_first,
                   eps, norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2, ffn_weight_1, *args,
                   out_shape=None, **kwargs) -> int:
    batch, length = _sequence_dims(src)
    feedforward = 2 * batch * length * _prod(ffn_weight_1)  # (F, E) and (E, F): the same size
    return 2 * (_attention_macs(batch, length, length, int(embed_dim)) + feedforward)


def _sdpa_cpu(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _embedding_bag(weight, indices, offsets, scale_grad_by_freq=False, mode=0, sparse=False,
                   per_sample_weights=None, *args, out_shape=None, **kwargs) -> int:
    return 0 if per_sample_weights is None else 2 * _prod(indices) * int(weight[1])


#: FlopCounterMode formulas (flops = 2 x MACs) of the operators its registry lacks.
FORMULAS = {
    aten.mv: _mv, aten.addmv: _addmv, aten.dot: _dot, aten.vdot: _dot, aten._int_mm: _int_mm,
    aten._weight_int8pack_mm: _weight_int8pack_mm, aten.mkldnn_linear: _mkldnn_linear,
    aten.mkldnn_rnn_layer: _rnn_layer, aten._trilinear: _trilinear,
    aten._native_multi_head_attention: _native_mha, aten._transformer_encoder_layer_fwd: _encoder_layer,
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu,
    aten._scaled_dot_product_fused_attention_overrideable: _sdpa_cpu,
    aten._embedding_bag_forward_only: _embedding_bag, aten._embedding_bag: _embedding_bag,
}

#: Operators that multiply and have no formula: counting them raises UncountedOperatorError.
REFUSED = (
    aten._cdist_forward, aten._fft_r2c, aten._fft_c2c, aten._fft_c2r, aten.linalg_solve_ex, aten._linalg_solve_ex,
    aten.linalg_inv_ex, aten.linalg_cholesky_ex, aten.linalg_qr, aten._linalg_svd, aten._linalg_eigh,
    aten.linalg_lstsq, aten.triangular_solve, aten.linalg_solve_triangular, aten.matrix_exp, aten.cholesky_solve,
    aten.linalg_lu_factor_ex, aten._linalg_det, aten._linalg_slogdet,
)


def _refuse(op):
    def formula(*args, **kwargs):
        raise UncountedOperatorError(f"torch operator {op} multiplies, but unitprune has no MAC formula for it "
                                     "(a total without it would miss work)")
    formula._get_raw = True  # FlopCounterMode passes the raw arguments (nothing to convert)
    return formula


def counting_mapping() -> dict:
    """The ``custom_mapping`` of FlopCounterMode: :data:`FORMULAS` plus a refusal for each :data:`REFUSED`."""
    return {**FORMULAS, **{op: _refuse(op) for op in REFUSED}}
