"""C export of a whole :class:`~unitprune.mcu.qmodel.QuantizedModel`: a self-contained C project.

:func:`export_c` writes into ``out_dir``:

* ``model.h`` / ``model.c``: the constant tables in flash (``UNIT_FLASH``: weights, tau tables,
  quotient tables and trees, bias and requantization constants), the small descriptors the kernels
  read from RAM, the static activation arena of the memory plan and ``unit_model_run(input,
  output)``: the layers as straight-line calls to the ``unit_*_s8`` kernels in op order, with
  optional per-layer region markers (``-DUNIT_MODEL_MARKERS=1``) and, with ``-DUNIT_S8_COUNTS=1``,
  per-layer MAC counters summed over calls (``unit_model_counts``);
* ``unit_model_internal.h`` (the fixed part of ``model.c``) and ``main.c``, the runner for the
  target, copied from ``c_templates/``; for MCU targets also ``main_host.c`` (the host runner, so
  the same ``model.c`` can be checked on the host) and ``samples.h`` (the embedded test samples);
* ``kernels/``: the kernel sources and headers the model needs, copied from ``unitprune/csrc``
  (the folder builds on its own);
* ``Makefile`` with the exact build commands, ``memory_plan.json`` (plan, flash, layers, build
  commands) and ``README.md`` (the same as text).

The pipeline, one module a step (:mod:`.pipeline` calls them in order): :mod:`.checks` ->
:mod:`.memory_plan` -> :mod:`.model_c` -> :mod:`.build_files` -> :mod:`.manifest`. Target facts
come from :mod:`unitprune.mcu.targets.specs`. The integer semantics are docs/fixed_point.md; the
exporter only lays out data and calls.
"""

from .export_types import FAR_DEFINES, ExportError, ExportResult, LayerFlash, SamplesTooLarge, layer_names
from .memory_plan import scratch_sizes
from .pipeline import export_c

__all__ = ["ExportError", "ExportResult", "FAR_DEFINES", "LayerFlash", "SamplesTooLarge", "export_c", "layer_names", "scratch_sizes"]
