"""UnIT on microcontrollers: int8 quantization, the integer reference, C export, MCU targets.

Modules:
    qmodel      the quantized model's data structures (the contract between quantize and export)
    graph       the model as a traced chain of layers (BatchNorm folded, ReLU fused)
    quantize    float UnIT model -> :class:`~unitprune.mcu.qmodel.QuantizedModel` (TFLite int8 scheme)
    reference   the integer reference implementation (NumPy), the oracle for the C kernels and export
    agreement   how often the integer UnIT decisions agree with the float ones (``decision_agreement``)
    export      ``export_c``: a whole quantized model as a self-contained C project (docs/export.md), a
                pipeline of small modules: checks -> memory_plan -> model_c -> build_files -> manifest
    codegen     the C code generator the export uses (arrays, constants, identifiers, file headers)
    host_runner ``run_exported``: build an export with the host compiler and run it on a batch
    targets     build and run firmware on simulated MCUs (AVR in simavr, MSP430 in mspdebug);
                ``targets.specs`` holds every fact about a target chip

The integer semantics are fixed in docs/fixed_point.md.
"""

from .agreement import decision_agreement
from .qmodel import QuantizedModel
from .quantize import QuantConfig, quantize

__all__ = ["QuantConfig", "QuantizedModel", "decision_agreement", "quantize"]
