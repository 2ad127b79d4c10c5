/* safetensors.h — read-only access to a .safetensors file, mapped into memory.
 *
 * Format (huggingface safetensors): u64 little-endian header length N, N bytes of JSON
 * {"__metadata__": {str: str}, NAME: {"dtype", "shape", "data_offsets": [b, e]}, ...},
 * then the data section; offsets are relative to its start.
 *
 * rs_safetensors_open validates the whole header before returning: length inside the
 * file, JSON well formed with no duplicate keys, metadata values are strings, every
 * tensor has a supported dtype (F32, F16, BF16), a shape whose byte size equals its
 * offset range, offsets inside the data section, and no two tensors overlap. After a
 * successful open every rs_st_tensor.data points at end - begin readable bytes.
 *
 * Ownership: the rs_safetensors owns the mapping and all strings; tensor pointers stay
 * valid until rs_safetensors_close. Nothing is copied. */
#ifndef RS_SAFETENSORS_H
#define RS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "rs_error.h"

#define RS_ST_MAX_DIMS 8

typedef enum rs_dtype { RS_DTYPE_F32, RS_DTYPE_F16, RS_DTYPE_BF16 } rs_dtype;

typedef struct rs_st_tensor {
    const char *name;
    rs_dtype dtype;
    int ndim;
    int64_t shape[RS_ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* inside the mapping; aligned only as the file happens to be */
    size_t nbytes;
} rs_st_tensor;

typedef struct rs_safetensors rs_safetensors;

/* Maps and validates PATH. On failure returns RS_EIO or RS_EFORMAT with a message that
 * starts with PATH, e.g. "m.safetensors: tensor head.weight: dtype 'Q8' is not supported". */
int rs_safetensors_open(const char *path, rs_safetensors **out, rs_error *err);
void rs_safetensors_close(rs_safetensors *st);

/* Tensors sorted by name; index in [0, count). */
int rs_safetensors_count(const rs_safetensors *st);
const rs_st_tensor *rs_safetensors_at(const rs_safetensors *st, int index);
/* NULL when absent. */
const rs_st_tensor *rs_safetensors_find(const rs_safetensors *st, const char *name);
/* The __metadata__ value for KEY, or NULL. */
const char *rs_safetensors_metadata(const rs_safetensors *st, const char *key);
const char *rs_safetensors_path(const rs_safetensors *st);
size_t rs_safetensors_file_size(const rs_safetensors *st);

/* SHA-256 of the whole file as 64 lowercase hex digits and a NUL: the model's identity
 * in the routing store. */
void rs_safetensors_sha256(const rs_safetensors *st, char hex[65]);

const char *rs_dtype_name(rs_dtype dtype);
size_t rs_dtype_size(rs_dtype dtype);

/* Widens N elements of DTYPE at SRC (any alignment) into float DST. */
void rs_dtype_to_f32(rs_dtype dtype, const void *src, float *dst, size_t n);

/* "[a,b,c]" into buf; returns buf. */
char *rs_shape_str(const int64_t *shape, int ndim, char *buf, size_t size);

#endif
