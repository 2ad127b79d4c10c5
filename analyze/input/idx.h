/* idx.h — the IDX files of MNIST and Fashion-MNIST, raw or gzip-compressed.
 *
 * Format: big-endian u32 magic 0x00000803 (unsigned bytes, 3 dimensions: count, rows,
 * cols) for images or 0x00000801 (1 dimension) for labels, the sizes as big-endian u32,
 * then the bytes. zlib reads .gz and plain files alike.
 *
 * The reader checks the magic, that the sizes are sane, that exactly the announced number
 * of bytes follows (a short file is "truncated", extra bytes are an error too), and that
 * the labels of a pair are as many as the images. Errors name the file. */
#ifndef RS_IDX_H
#define RS_IDX_H

#include <stdint.h>

#include "rs_error.h"

typedef struct rs_idx_images {
    int count, rows, cols;
    uint8_t *pixels;   /* owned, (count, rows, cols) */
} rs_idx_images;

int rs_idx_read_images(const char *path, rs_idx_images *out, rs_error *err);
/* LABELS: owned array of COUNT bytes. */
int rs_idx_read_labels(const char *path, uint8_t **labels, int *count, rs_error *err);
void rs_idx_images_free(rs_idx_images *images);

#endif
