/* testutil.h — small helpers shared by the cmocka tests. */
#ifndef RS_TESTUTIL_H
#define RS_TESTUTIL_H

#include <stddef.h>

#include "model.h"
#include "safetensors.h"

/* Sets M's GEMM backend from the environment's RS_GEMM (openblas when unset), float32: the
 * golden and gradient suites run once per backend built (tests/meson.build), with the same
 * tolerances. */
int tu_set_backend(rs_model *m, rs_error *err);

/* A float copy of tensor NAME of ST (any dtype, any alignment), or NULL when absent.
 * Caller frees. *NUMEL receives the element count when not NULL. */
float *tu_tensor_f32(const rs_safetensors *st, const char *name, size_t *numel);

/* Reads a whole file; caller frees. NULL on failure. */
unsigned char *tu_read_file(const char *path, size_t *size);
/* Writes SIZE bytes; 0 on success. */
int tu_write_file(const char *path, const void *data, size_t size);

/* Makes a new scratch folder for the tests of NAME, /dev/shm/rs_test_NAME_XXXXXX (faster
 * fsync) or, without /dev/shm, /tmp/rs_test_NAME_XXXXXX; its path into DIR. 0 on success,
 * -1 (errno set) when neither can be made. */
int tu_scratch_dir(const char *name, char *dir, size_t size);
/* "DIR/NAME" in one of four buffers that later calls reuse in turn. */
const char *tu_path(const char *dir, const char *name);

/* Removes DIR and the plain files directly inside it (the tests' scratch folders). */
void tu_remove_dir(const char *dir);

/* The directory given by the environment variable NAME, or FALLBACK. */
const char *tu_dir(const char *name, const char *fallback);

#endif
