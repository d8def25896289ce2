"""ctypes binding of the C kernels in ``src/unitprune/csrc`` (built by setup.py, no Python C API).

Split by concern (as the C headers are):

* :mod:`.loading`: finding and loading the shared library, the ctypes mirrors of the C structs
  (checked against the compiler's layout by ``unit_struct_layout``), argument helpers;
* :mod:`.plans`: the preprocessed float plans (:class:`LinearPlan`, :class:`ConvPlan`), their
  :class:`PlanCache`, and :func:`conv_params`;
* :mod:`.calls`: the float32 layer calls (:func:`linear`, :func:`conv`, dense baselines, the
  division approximations);
* :mod:`.s8`: the int8 fixed-point kernels (docs/fixed_point.md) on NumPy integer arrays.

Everything is re-exported here, so ``from unitprune import kernels; kernels.linear(...)`` works.
"""

from .calls import (all_finite, approx, conv, conv_dense, conv_quotients, linear, linear_cutoffs,
                    linear_dense)
from .loading import (_INF_BITS, APPROX_CODES, KERNELS_VERSION, LIBRARY_STEM, SHIFT_START_NONE, STRUCT_MIRRORS,
                      CConv2dParams, CConv2dPlan, CConv2dPlanF32, CCounts, CLinearPlan, CLinearPlanF32,
                      CQuotientTreeS8, CRequantS8, KernelLibrary, KernelsUnavailableError, _default_library,
                      available, library_path, load_library, struct_layout_mismatches)
from . import s8
from .plans import (LANE_ALIGN, ROW_ALIGN, SCATTER_COST, ConvPlan, LinearPlan, PlanCache, conv_params, conv_plan,
                    linear_plan)

__all__ = [
    "KernelsUnavailableError", "KernelLibrary", "library_path", "load_library", "available",
    "LinearPlan", "ConvPlan", "PlanCache", "linear", "conv", "linear_dense", "conv_dense",
    "approx", "conv_quotients", "linear_cutoffs", "all_finite", "APPROX_CODES", "SHIFT_START_NONE",
    "KERNELS_VERSION", "LIBRARY_STEM", "STRUCT_MIRRORS", "struct_layout_mismatches", "conv_params", "conv_plan",
    "linear_plan", "CCounts", "CConv2dParams", "CLinearPlanF32", "CConv2dPlanF32", "CLinearPlan", "CConv2dPlan",
    "CRequantS8", "CQuotientTreeS8", "SCATTER_COST", "LANE_ALIGN", "ROW_ALIGN", "s8",
]
