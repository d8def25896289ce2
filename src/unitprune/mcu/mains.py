"""The ``main.c`` files of an exported model (one per target kind).

* :func:`host_main`: reads int8 samples (``UNIT_MODEL_INPUT_SIZE`` bytes each, back to back) from a
  binary file or stdin, runs ``unit_model_run`` on each, writes the int8 outputs to a binary file
  and prints ``samples N`` and, when built with ``-DUNIT_S8_COUNTS=1``, one line per layer:
  ``counts INDEX NAME dense zero_weight zero_activation threshold executed compares divisions``
  (summed over the samples). :func:`unitprune.run_exported` parses exactly this.
* :func:`mcu_main`: loops over test samples embedded in flash (``samples.h``), copies each to RAM
  and runs one inference between the measurement markers of ``unit_mcu.h`` (region
  ``inference``; with ``-DUNIT_MODEL_MARKERS=1`` the regions are per layer instead, labelled with the
  layer names, from ``model.c``), then emits the outputs with ``unit_mcu_emit`` for the bit-exact
  check. With counters compiled in, a last region ``counts`` carries ``unit_model_counts``.
"""

from __future__ import annotations

import numpy as np

from . import codegen

__all__ = ["host_main", "mcu_main", "samples_header"]


def host_main(layers: list[str], source: str) -> str:
    names = ", ".join(f'"{codegen.c_identifier(name)}"' for name in layers)  # one word each: parsed by index
    names_table = (f"#if UNIT_S8_COUNTS\nstatic const char *const layer_names[UNIT_MODEL_LAYERS] = {{{names}}};\n"
                   "#endif") if layers else ""
    counts = ""
    if layers:
        fields = ", ".join(f"(long long)c->{f}" for f in ("dense", "zero_weight", "zero_activation", "threshold",
                                                             "executed", "compares", "divisions"))
        counts = f"""#if UNIT_S8_COUNTS
    for (layer = 0; layer < UNIT_MODEL_LAYERS; layer++) {{
        const unit_counts *c = &unit_model_counts[layer];
        printf("counts %d %s %lld %lld %lld %lld %lld %lld %lld\\n", layer, layer_names[layer], {fields});
    }}
#endif
"""
    return codegen.file_header("main.c", "host runner: int8 samples in, int8 outputs and MAC counters out",
                               source) + f"""#include <stdio.h>
#include <string.h>

#include "model.h"

static int8_t input[UNIT_MODEL_INPUT_SIZE];
static int8_t output[UNIT_MODEL_OUTPUT_SIZE];
{names_table}

int main(int argc, char **argv) {{
    FILE *in;
    FILE *out;
    long samples = 0;
    int layer = 0;
    int32_t status;
    if (argc != 3) {{
        fprintf(stderr, "usage: %s INPUT.bin|- OUTPUT.bin\\n"
                        "  INPUT: int8 samples of %d bytes each, back to back (- reads stdin)\\n",
                argv[0], (int)UNIT_MODEL_INPUT_SIZE);
        return 2;
    }}
    status = unit_model_check();
    if (status != UNIT_OK) {{
        fprintf(stderr, "unit_model_check: %ld (scratch buffer too small)\\n", (long)status);
        return 1;
    }}
    in = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
    if (in == NULL) {{
        fprintf(stderr, "cannot open %s\\n", argv[1]);
        return 1;
    }}
    out = fopen(argv[2], "wb");
    if (out == NULL) {{
        fprintf(stderr, "cannot open %s\\n", argv[2]);
        return 1;
    }}
    for (;;) {{
        size_t got = fread(input, 1, sizeof(input), in);
        if (got == 0) {{
            break;
        }}
        if (got != sizeof(input)) {{
            fprintf(stderr, "%s: sample %ld is truncated (%lu of %d bytes)\\n", argv[1], samples,
                    (unsigned long)got, (int)UNIT_MODEL_INPUT_SIZE);
            return 1;
        }}
        status = unit_model_run(input, output);
        if (status != UNIT_OK) {{
            fprintf(stderr, "unit_model_run: %ld on sample %ld\\n", (long)status, samples);
            return 1;
        }}
        if (fwrite(output, 1, sizeof(output), out) != sizeof(output)) {{
            fprintf(stderr, "cannot write %s\\n", argv[2]);
            return 1;
        }}
        samples++;
    }}
    if (fclose(out) != 0) {{
        fprintf(stderr, "cannot write %s\\n", argv[2]);
        return 1;
    }}
    if (in != stdin) {{
        fclose(in);
    }}
    printf("samples %ld\\n", samples);
{counts}    (void)layer;
    return 0;
}}
"""


def samples_header(samples: np.ndarray, source: str, far: bool = False) -> str:
    """``samples.h``: the embedded test samples, int8 ``[samples][UNIT_MODEL_INPUT_SIZE]`` in flash
    (``far``: a far table, as the model's in a far-tables export; unit_types.h)."""
    return "".join([
        codegen.file_header("samples.h", f"{len(samples)} int8 test samples in flash", source),
        "#ifndef UNIT_MODEL_SAMPLES_H\n#define UNIT_MODEL_SAMPLES_H\n\n#include \"model.h\"\n\n",
        codegen.c_define("UNIT_MODEL_SAMPLES", len(samples)),
        codegen.c_array("int8_t", "unit_model_samples", samples, flash=True, far=far),
        "\n#endif /* UNIT_MODEL_SAMPLES_H */\n"])


def mcu_main(has_layers: bool, source: str, far: bool = False) -> str:
    """``main.c`` of an MCU export (``far``: the samples are a far table, read through UNIT_TABLE)."""
    counts = """#if UNIT_S8_COUNTS
    unit_mcu_label("counts");
    UNIT_MCU_START();
    UNIT_MCU_STOP();
    unit_mcu_emit(unit_model_counts, (uint16_t)sizeof(unit_model_counts));
#endif
""" if has_layers else ""
    return codegen.file_header("main.c", "MCU runner: embedded samples, measurement markers, outputs emitted",
                               source) + f"""#include <stdint.h>

#include "model.h"
#include "samples.h"
#include "unit_mcu.h"

#ifndef UNIT_MODEL_MARKERS
#define UNIT_MODEL_MARKERS 0
#endif

static int8_t input[UNIT_MODEL_INPUT_SIZE];
static int8_t output[UNIT_MODEL_OUTPUT_SIZE];

static void report_error(int32_t status) {{
    unit_mcu_label("error");
    UNIT_MCU_START();
    UNIT_MCU_STOP();
    unit_mcu_emit(&status, (uint16_t)sizeof(status));
    unit_mcu_done();
}}

int main(void) {{
    int32_t sample;
    int32_t i;
    int32_t status = unit_model_check();
    if (status != UNIT_OK) {{
        report_error(status);
    }}
    for (sample = 0; sample < UNIT_MODEL_SAMPLES; sample++) {{
        const {"UNIT_TABLE " if far else ""}int8_t *source = unit_model_samples + sample * UNIT_MODEL_INPUT_SIZE;
        for (i = 0; i < UNIT_MODEL_INPUT_SIZE; i++) {{
            input[i] = UNIT_READ_S8(source + i);
        }}
#if !UNIT_MODEL_MARKERS
        unit_mcu_label("inference");
        UNIT_MCU_START();
#endif
        status = unit_model_run(input, output);
#if !UNIT_MODEL_MARKERS
        UNIT_MCU_STOP();
#endif
        if (status != UNIT_OK) {{
            report_error(status);
        }}
        unit_mcu_emit(output, (uint16_t)UNIT_MODEL_OUTPUT_SIZE);
    }}
{counts}    unit_mcu_done();
    return 0;
}}
"""
