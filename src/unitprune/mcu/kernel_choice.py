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

Static sparsity (``variant="zeroskip"``, the TTP and zero-skipping exports): every conv/linear layer
whose nonzero weights fit the ``unit_sparse_s8`` tables (uint16 offsets and per-channel counts,
:mod:`unitprune.kernels.sparse_s8`) calls ``unit_conv2d_sparse_s8`` / ``unit_linear_sparse_s8``
(only the nonzero weights stored, a zero weight costs nothing) instead of the weight-stationary
zero-skipping loop, unless the tables do not fit the target's flash reads (less the code's reserve
where code shares them: ``TargetSpec.code_reserve_bytes``, MSP430): then the layers whose
tables grow most over their int8 weights (dense layers: 4 bytes per weight instead of 1) keep the
zero-skipping kernel, one by one, until the constants fit (:func:`sparse_layers`). The sparse run
is assembly on AVR and MSP430 with ``auto`` (AVR: channels of at most 341 nonzero weights, the
24-bit accumulator's bound; longer ones take the C run).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.sparse_s8 import SparseTables, conv_sparse_tables, linear_sparse_tables
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
    under ``unit`` the op's planned one (:attr:`unitprune.mcu.qmodel.QConv.unit_kernel`; ``static``, the
    layer exact, calls ``unit_conv2d_sparse_s8`` where :func:`sparse_layers` holds its tables, else dense)."""
    if variant != "unit" or op.unit_kernel == "unit":
        return variant
    return {"dense": "dense", "static": "dense", "sparse": "unit_sparse", "sparse_tau": "sparse_tau"}.get(
        op.unit_kernel, "unit_skipfree")


def linear_variant(op, variant: str) -> str:
    """The variant a linear op of a ``variant`` export runs: ``dense`` for a ``unit`` op planned
    ``static`` (exact) whose sparse tables :func:`sparse_layers` does not hold, else ``variant``."""
    return "dense" if variant == "unit" and op.unit_kernel == "static" else variant


def linear_kernel(op, variant: str, linear_quotient: str | None) -> str:
    """The ``unit_linear_<...>_s8`` a linear op not on the static-sparse kernel calls."""
    variant = linear_variant(op, variant)
    quotient = f"_{linear_quotient}" if variant == "unit" and linear_quotient else ""
    quotient = f"_sorted{quotient}" if variant == "unit" and op.unit_kernel == "sorted" else quotient
    return f"unit_linear_{variant}{quotient}_s8"


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


#: The largest channel the AVR sparse run accumulates in 24 bits (biased products <= 49152).
AVR_SPARSE_NONZEROS = AVR_NARROW_MACS


def sparse_tables(op) -> SparseTables | None:
    """The ``unit_sparse_s8`` tables of a conv/linear op, or None when they cannot hold it."""
    try:
        if isinstance(op, QConv):
            return conv_sparse_tables(op.weight, op.in_height, op.in_width, op.dilation, any(op.padding), op.name)
        return linear_sparse_tables(op.weight, op.name)
    except ValueError:
        return None


def sparse_layers(ops, variant: str, flash_limit: int | None = None, other_bytes: int = 0) -> dict[str, SparseTables]:
    """The layers that take the static-sparse kernels, with their tables (module docstring): under
    ``variant == "zeroskip"`` every conv/linear layer, under ``unit`` those planned ``static`` (their
    UnIT off: :mod:`unitprune.mcu.unit_plan`), under others none. ``flash_limit``: the bytes of constants the kernels can read
    (None: no limit); ``other_bytes``: the constants besides the weights (requantization tables, the
    code's reserve; not the embedded samples: the choice is the deployed firmware's)."""
    if variant not in ("zeroskip", "unit"):
        return {}
    chosen = {}
    weight_bytes = {}
    for op in ops:
        if isinstance(op, (QConv, QLinear)):
            weight_bytes[op.name] = op.weight.size
            static = variant == "zeroskip" or op.unit_kernel == "static"
            tables = sparse_tables(op) if static else None
            if tables is not None:
                chosen[op.name] = tables
    if flash_limit is None:
        return chosen

    def total() -> int:
        return other_bytes + sum(chosen[name].flash_bytes if name in chosen else size
                                 for name, size in weight_bytes.items())

    while total() > flash_limit and chosen:
        worst = max(chosen, key=lambda name: chosen[name].flash_bytes - weight_bytes[name])
        if chosen[worst].flash_bytes <= weight_bytes[worst]:
            break  # every remaining table is smaller than the weights it replaces
        del chosen[worst]
    return chosen


def rowlists_avr_fits(op: QConv) -> bool:
    """The condition of ``unit__rowlists_avr_fits`` (unit_internal_rowlists_s8.h) for the AVR loop of
    the sparse UnIT convolution."""
    return (op.stride[1] == 1 and op.out_width <= 255 and op.in_width - 1 + op.padding[2] <= 255
            and (op.kernel_width - 1) * op.dilation[1] + op.out_width <= 256)


def choose(ops, target: str, variant: str, kernels: str = "auto", far_tables: bool = False,
           sparse: dict[str, SparseTables] | None = None, linear_quotient: str | None = None, zeroact=()
           ) -> dict[str, LayerKernels]:
    """The path of every conv/linear op of an export (by layer name); ``sparse``: the layers of
    :func:`sparse_layers`; ``linear_quotient``: the UnIT linear kernels' quotient (their name);
    ``zeroact``: those of the sparse layers that also skip zero activations
    (:func:`unitprune.mcu.zeroact_plan.zeroact_layers`: ``unit_conv2d_sparse_zeroact_s8``, the same runs)."""
    check_kernel_set(kernels)
    sparse = sparse or {}
    assembly = kernels == "auto" and target in ("avr", "msp430") and not (target == "avr" and far_tables)
    stage = "assembly" if kernels == "auto" and target in ("avr", "msp430") else "portable"
    chosen = {}
    for op in ops:
        if op.name in sparse:
            kind = ("conv2d_sparse_zeroact" if op.name in zeroact else "conv2d_sparse") if isinstance(op, QConv) \
                else "linear_sparse"
            longest = int(sparse[op.name].nonzeros.max(initial=0))
            run = "assembly" if assembly and (target != "avr" or longest <= AVR_SPARSE_NONZEROS) else "portable"
            bits = (24 if run == "assembly" else None) if target == "avr" else None
            chosen[op.name] = LayerKernels(op.name, f"unit_{kind}_s8", run, bits, stage)
        elif isinstance(op, QConv):
            conv = conv_variant(op, variant)
            kernel = f"unit_conv2d_{conv}_s8"
            if conv == "unit_skipfree":  # its tap loop in assembly: AVR where it fits, MSP430 always
                fits = target == "msp430" or (target == "avr" and skipfree_avr_fits(op))
                run = "assembly" if kernels == "auto" and fits else "portable"
                bits = None
            elif conv == "unit_sparse":  # its row loop in assembly: AVR where it fits, MSP430 always
                fits = target == "msp430" or (target == "avr" and rowlists_avr_fits(op))
                run = "assembly" if kernels == "auto" and fits and not far_tables else "portable"
                bits = None
            elif conv == "sparse_tau":  # its run in assembly on MSP430 for inputs >= 0 (checked per call)
                run = "assembly" if kernels == "auto" and target == "msp430" else "portable"
                bits = None
            elif conv == "dense":
                run = "assembly" if assembly and assembly_run_fits(op) else "portable"
                field = op.in_channels // op.groups * op.kernel_height * op.kernel_width
                bits = avr_accumulator_bits(field) if run == "assembly" and target == "avr" else None
            else:  # the weight-stationary zeroskip / unit loops, the UnIT sparse row lists (C)
                run, bits = "portable", None
            chosen[op.name] = LayerKernels(op.name, kernel, run, bits, stage)
        elif isinstance(op, QLinear):
            chosen[op.name] = LayerKernels(op.name, linear_kernel(op, variant, linear_quotient), "portable", None,
                                           stage)
    return chosen
