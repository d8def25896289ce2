"""Which int8 kernel path each layer of an export takes, and the accumulator width it may use.

``unitprune export --kernels auto`` (the default) builds the kernels with their per-target
assembly (docs/kernels.md, "Dense int8 kernels at the floor"); ``--kernels portable`` builds the
same C99 sources with ``UNIT_PORTABLE_KERNELS=1``: the portable C everywhere (the host build is
always portable). The choice inside ``unit_conv2d_dense_s8`` is made per layer, by the layer's
geometry, and mirrored here so that the manifest records it:

* ``assembly`` when the kernel columns are contiguous (``dilation_x == 1``) and the run
  descriptor's 8-bit fields hold the layer (``C/groups``, ``KH``, ``KW``, ``(KH - 1) * KW`` at most
  255); otherwise the portable C run (exact, slower);
* the AVR run's accumulator: 24-bit where the exporter proves it exact, 32-bit otherwise. The proof
  needs only the field size: the AVR run adds ``x*w + 32768`` (the product with its sign bit
  flipped), which lies in ``[16512, 49152]`` for int8 operands, so a field of ``n`` MACs sums to at
  most ``49152 n``, below ``2**24`` for ``n <= 341`` whatever the weights and inputs. Fields clipped
  by padding are smaller and take the same or the narrower path. MSP430 accumulates in 32 bits (the
  hardware multiplier's RESHI:RESLO, or a register pair);
* the output stage (requantization): assembly on AVR and MSP430 with ``auto``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .qmodel import QConv, QLinear

#: ``--kernels`` values.
KERNEL_SETS = ("auto", "portable")
#: The largest AVR field (MACs) the 24-bit accumulator holds exactly: 49152 * 341 < 2**24.
AVR_NARROW_MACS = (2**24 - 1) // 49152
#: Biased products of the AVR run lie in [BIASED_MIN, BIASED_MAX].
BIASED_MIN, BIASED_MAX = 32768 - 128 * 127, 32768 + 128 * 128


@dataclass(frozen=True)
class LayerKernels:
    """The path of one conv/linear layer: ``run`` is ``assembly`` or ``portable``; ``accumulator``
    the AVR run's width in bits for whole fields (24 or 32; None off AVR or for portable runs);
    ``output_stage`` ``assembly`` or ``portable``."""

    layer: str
    kernel: str
    run: str
    accumulator_bits: int | None
    output_stage: str

    def to_dict(self) -> dict:
        return {"kernel": self.kernel, "run": self.run, "accumulator_bits": self.accumulator_bits,
                "output_stage": self.output_stage}


def check_kernel_set(kernels: str) -> str:
    if kernels not in KERNEL_SETS:
        raise ValueError(f"kernels must be one of {', '.join(KERNEL_SETS)}, got {kernels!r}")
    return kernels


def build_defines(kernels: str) -> dict[str, int]:
    """Preprocessor definitions of the kernel set (added to every MCU build of the export)."""
    return {"UNIT_PORTABLE_KERNELS": 1} if check_kernel_set(kernels) == "portable" else {}


def assembly_run_fits(op: QConv) -> bool:
    """The condition of ``unit_conv2d_dense_s8.c`` for the assembly runs."""
    group_in = op.in_channels // op.groups
    return (op.dilation[1] == 1 and group_in <= 255 and op.kernel_height <= 255 and op.kernel_width <= 255
            and (op.kernel_height - 1) * op.kernel_width <= 255)


def conv_variant(op: QConv, variant: str) -> str:
    """The ``unit_conv2d_<...>_s8`` a conv op of a ``variant`` export calls: the variant's kernel, or
    under ``unit`` the op's planned one (:attr:`unitprune.mcu.qmodel.QConv.unit_kernel`)."""
    if variant != "unit" or op.unit_kernel == "unit":
        return variant
    return "dense" if op.unit_kernel == "dense" else "unit_skipfree"


def skipfree_avr_fits(op: QConv) -> bool:
    """The condition of ``unit__skipfree_avr_fits`` (unit_internal_skipfree_s8.h) for the AVR tap loop."""
    return (op.stride == (1, 1) and op.out_height <= 255 and op.out_width <= 255
            and op.in_height - 1 + op.padding[0] <= 255 and op.in_width - 1 + op.padding[2] <= 255
            and (op.kernel_height - 1) * op.dilation[0] + op.out_height <= 256
            and (op.kernel_width - 1) * op.dilation[1] + op.out_width <= 256)


def avr_accumulator_bits(field_macs: int) -> int:
    """24 if ``field_macs`` biased products always sum below ``2**24`` (the proof in the module
    docstring), else 32."""
    return 24 if field_macs * BIASED_MAX < 2**24 else 32


def choose(ops, target: str, variant: str, kernels: str = "auto", far_tables: bool = False) -> dict[str, LayerKernels]:
    """The path of every conv/linear op of an export (by layer name)."""
    check_kernel_set(kernels)
    assembly = kernels == "auto" and target in ("avr", "msp430") and not (target == "avr" and far_tables)
    stage = "assembly" if kernels == "auto" and target in ("avr", "msp430") else "portable"
    chosen = {}
    for op in ops:
        if isinstance(op, QConv):
            conv = conv_variant(op, variant)
            kernel = f"unit_conv2d_{conv}_s8"
            if conv == "unit_skipfree":  # its tap loop in assembly: AVR where it fits, MSP430 always
                fits = target == "msp430" or (target == "avr" and skipfree_avr_fits(op))
                run = "assembly" if kernels == "auto" and fits else "portable"
                bits = None
            elif conv == "dense":
                run = "assembly" if assembly and assembly_run_fits(op) else "portable"
                field = op.in_channels // op.groups * op.kernel_height * op.kernel_width
                bits = avr_accumulator_bits(field) if run == "assembly" and target == "avr" else None
            else:  # the weight-stationary zeroskip / unit loops (C)
                run, bits = "portable", None
            chosen[op.name] = LayerKernels(op.name, kernel, run, bits, stage)
        elif isinstance(op, QLinear):
            chosen[op.name] = LayerKernels(op.name, f"unit_linear_{variant}_s8", "portable", None, stage)
    return chosen
