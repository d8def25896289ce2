"""Change detection for values derived from tensors (quotients, C-kernel plans).

A derived value is reused while its source tensors are unchanged. PyTorch counts in-place
modifications of a tensor in its version counter, which is cheap to read. Inference tensors
(created under ``torch.inference_mode``) have no version counter, so for them a snapshot keeps a
copy of the contents and compares it: slower, but a model built and calibrated entirely inside
inference mode still sees its new thresholds.
"""

from __future__ import annotations

import torch
from torch import Tensor


def tensor_version(tensor: Tensor) -> int:
    """The tensor's in-place modification counter, or -1 for an inference tensor (it has none)."""
    return -1 if tensor.is_inference() else tensor._version


class TensorSnapshot:
    """What a tensor was when a derived value was computed from it.

    ``unchanged(t)`` is true iff ``t`` is the same tensor object at the same version, or (for a
    view made anew, e.g. ``weight.unsqueeze(2)``) a tensor with the same address, shape, strides
    and version; for inference tensors the contents must also be equal.
    """

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor  # held, so its address cannot be reused by another tensor meanwhile
        self.version = tensor_version(tensor)
        self.contents = tensor.detach().clone() if tensor.is_inference() else None

    def unchanged(self, tensor: Tensor) -> bool:
        if tensor is not self.tensor:
            held = self.tensor
            if (tensor.data_ptr() != held.data_ptr() or tensor.shape != held.shape
                    or tensor.stride() != held.stride() or tensor.dtype != held.dtype):
                return False
        if tensor_version(tensor) != self.version:
            return False
        return self.contents is None or torch.equal(self.contents, tensor)
