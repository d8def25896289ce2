/* SPDX-License-Identifier: MIT */
/* main_host.c: the host runner of an exported model, copied by unitprune's exporter
 * (unitprune/mcu/export/c_templates): int8 samples in, int8 outputs and MAC counters out.
 *
 * Reads int8 samples (UNIT_MODEL_INPUT_SIZE bytes each, back to back) from a binary file or stdin,
 * runs unit_model_run on each, writes the int8 outputs to a binary file and prints "samples N"
 * and, when built with -DUNIT_S8_COUNTS=1, one line per layer (summed over the samples):
 *   counts INDEX NAME dense zero_weight zero_activation threshold executed compares divisions
 * unitprune.run_exported parses exactly this. */
#include <stdio.h>
#include <string.h>

#include "model.h"

static int8_t input[UNIT_MODEL_INPUT_SIZE];
static int8_t output[UNIT_MODEL_OUTPUT_SIZE];
#if UNIT_S8_COUNTS && UNIT_MODEL_LAYERS > 0
static const char *const layer_names[UNIT_MODEL_LAYERS] = UNIT_MODEL_LAYER_NAMES;
#endif

int main(int argc, char **argv) {
    FILE *in;
    FILE *out;
    long samples = 0;
    int layer = 0;
    int32_t status;
    if (argc != 3) {
        fprintf(stderr, "usage: %s INPUT.bin|- OUTPUT.bin\n"
                        "  INPUT: int8 samples of %d bytes each, back to back (- reads stdin)\n",
                argv[0], (int)UNIT_MODEL_INPUT_SIZE);
        return 2;
    }
    status = unit_model_check();
    if (status != UNIT_OK) {
        fprintf(stderr, "unit_model_check: %ld (scratch buffer too small)\n", (long)status);
        return 1;
    }
    in = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
    if (in == NULL) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 1;
    }
    out = fopen(argv[2], "wb");
    if (out == NULL) {
        fprintf(stderr, "cannot open %s\n", argv[2]);
        return 1;
    }
    for (;;) {
        size_t got = fread(input, 1, sizeof(input), in);
        if (got == 0) {
            break;
        }
        if (got != sizeof(input)) {
            fprintf(stderr, "%s: sample %ld is truncated (%lu of %d bytes)\n", argv[1], samples,
                    (unsigned long)got, (int)UNIT_MODEL_INPUT_SIZE);
            return 1;
        }
        status = unit_model_run(input, output);
        if (status != UNIT_OK) {
            fprintf(stderr, "unit_model_run: %ld on sample %ld\n", (long)status, samples);
            return 1;
        }
        if (fwrite(output, 1, sizeof(output), out) != sizeof(output)) {
            fprintf(stderr, "cannot write %s\n", argv[2]);
            return 1;
        }
        samples++;
    }
    if (fclose(out) != 0) {
        fprintf(stderr, "cannot write %s\n", argv[2]);
        return 1;
    }
    if (in != stdin) {
        fclose(in);
    }
    printf("samples %ld\n", samples);
#if UNIT_S8_COUNTS && UNIT_MODEL_LAYERS > 0
    for (layer = 0; layer < UNIT_MODEL_LAYERS; layer++) {
        const unit_counts *c = &unit_model_counts[layer];
        printf("counts %d %s %lld %lld %lld %lld %lld %lld %lld\n", layer, layer_names[layer],
               (long long)c->dense, (long long)c->zero_weight, (long long)c->zero_activation,
               (long long)c->threshold, (long long)c->executed, (long long)c->compares, (long long)c->divisions);
    }
#endif
    (void)layer;
    return 0;
}
