/* dataset.h — labelled image sets named by a --data spec, turned into model input.
 *
 * Specs understood so far:
 *   fashion-mnist:test | fashion-mnist:train   the Debian package dataset-fashion-mnist
 *   idx:IMAGES[,LABELS]                        any IDX pair, raw or .gz
 * Pixels are kept as bytes; rs_dataset_batch converts a slice to the model's input:
 * [0,1] pixels, normalised with the config's mean/std, grey replicated to C channels.
 * It refuses images whose size differs from the model's (resizing is the replay
 * engine's job). Labels are -1 when the spec has none. */
#ifndef RS_DATASET_H
#define RS_DATASET_H

#include <stdint.h>

#include "config.h"
#include "rs_error.h"

#define RS_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct rs_dataset {
    char name[128];     /* the spec it was opened from */
    int count, height, width, channels;
    uint8_t *pixels;    /* owned, (count, channels, height, width) */
    int16_t *labels;    /* owned, count entries, -1 for unknown */
} rs_dataset;

int rs_dataset_open(const char *spec, rs_dataset *out, rs_error *err);
void rs_dataset_close(rs_dataset *ds);

/* Checks that the images fit CFG's input (same H, W; 1 or CFG's channels). */
int rs_dataset_check(const rs_dataset *ds, const rs_config *cfg, rs_error *err);

/* OUT (n, C, H, W) = normalised images first .. first+n-1. rs_dataset_check must have passed. */
void rs_dataset_batch(const rs_dataset *ds, const rs_config *cfg, int first, int n, float *out);

#endif
