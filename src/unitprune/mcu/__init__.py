"""UnIT on microcontrollers: int8 quantization, the integer reference, C export, MCU targets.

Modules:
    qmodel      the quantized model's data structures (the contract between quantize and export)
    graph       the model as a traced chain of layers (BatchNorm folded, ReLU fused)
    quantize    float UnIT model -> :class:`~unitprune.mcu.qmodel.QuantizedModel` (TFLite int8 scheme)
    reference   the integer reference implementation (NumPy), the oracle for the C kernels and export
    agreement   how often the integer UnIT decisions agree with the float ones (``decision_agreement``)
    export      C code generation of a whole model and the host build/run (``run_exported``)
    targets     build and run firmware on simulated MCUs (AVR in simavr, MSP430 in mspdebug)

The integer semantics are fixed in docs/fixed_point.md.
"""

from .agreement import decision_agreement
from .qmodel import QuantizedModel
from .quantize import QuantConfig, quantize

__all__ = ["QuantConfig", "QuantizedModel", "decision_agreement", "quantize"]
