/* vmoe_ckpt.h — read google-research/vmoe checkpoints and convert them to our layout.
 *
 * Format (google-research/vmoe vmoe/checkpoints/{partitioned,serialization,types,base}.py
 * and flax.serialization; all msgpack, little-endian array bytes):
 *   PREFIX.index   {"index": TREE, "shard_count": N, "version"?: "20220622"}; TREE is the
 *                  Flax state dict, each leaf ext 8 (IndexInfo) = msgpack [shaped_array,
 *                  [slice_nd...], [shard...]] (global shape + dtype, the global slices the
 *                  array is stored in, the shard of each slice).
 *   PREFIX.data-SSSSS-of-NNNNN   {"__msgpack_array_chunk_a87ca2__": true,
 *                  "<array index>": [[[ndarray...], slice_nd], ...]}; the array index is
 *                  the leaf's position in TREE flattened with sorted keys; the ndarrays
 *                  (ext 1: [shape, dtype name, bytes]) are the chunk's row-major values cut
 *                  into consecutive pieces (flax's MAX_CHUNK_SIZE); a piece may itself be
 *                  flax's {"__msgpack_chunked_array__", "shape", "chunks"} form.
 *   Ext types: 1 ndarray, 2 complex, 3 numpy scalar, 4 shaped array [shape, dtype,
 *   weak_type, {}], 5 slice [start, stop, step], 6 slice_nd [slice bytes...], 7 slice_nd
 *   array, 8 index_info. Slices must have step 1 (nil) and together cover the array.
 *
 * Ownership: the rs_vmoe_ckpt owns every name and float buffer; free with
 * rs_vmoe_ckpt_free (accepts NULL). Errors are RS_EIO / RS_EFORMAT / RS_ENOMEM with one
 * line naming the file and the problem, e.g.
 *   "ckpt.data-00001-of-00003: array 12 (Encoder/.../kernel): chunk has 96 values but
 *    slice [0:2,0:64] holds 128". */
#ifndef RS_VMOE_CKPT_H
#define RS_VMOE_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rs_error.h"

#define RS_VMOE_MAX_DIMS 8

typedef struct rs_vmoe_array {
    char *name;          /* "/"-joined path in the tree, e.g. "params/Encoder/encoder_norm/scale" */
    char dtype[16];      /* numpy dtype name as stored */
    bool is_float;       /* float32, float16 or bfloat16: data holds the values widened */
    int ndim;
    int64_t shape[RS_VMOE_MAX_DIMS];
    int64_t numel;
    float *data;         /* (shape) row-major; NULL when !is_float (other dtypes are skipped) */
} rs_vmoe_array;

typedef struct rs_vmoe_ckpt {
    int count;
    rs_vmoe_array *arrays; /* in flattening order (sorted paths) */
} rs_vmoe_ckpt;

/* Reads PREFIX.index and every shard it names, assembling each float array from its
 * slices. Fails on anything not understood (see above). */
int rs_vmoe_ckpt_read(const char *prefix, rs_vmoe_ckpt **out, rs_error *err);
void rs_vmoe_ckpt_free(rs_vmoe_ckpt *ck);
/* The array at PATH, or NULL. */
const rs_vmoe_array *rs_vmoe_ckpt_find(const rs_vmoe_ckpt *ck, const char *path);

/* What the tensors' shapes cannot tell; 0 / NULL / negative means "from the preset, else
 * the default". Defaults: top_k required (no default), image size from pos_embedding,
 * classifier from the presence of "cls", gelu tanh (flax.linen.gelu's default), mean/std
 * 0.5 (V-MoE's [-1,1] input), layer_norm_eps 1e-6 (Flax LayerNorm). */
typedef struct rs_vmoe_options {
    const char *preset;  /* a name of rs_vmoe_presets, or NULL */
    int top_k;           /* 0: from the preset */
    int image_size;      /* 0: from pos_embedding (a square grid) */
    int classifier;      /* -1: auto, else rs_classifier */
    int gelu;            /* -1: preset/default, else rs_gelu */
} rs_vmoe_options;

/* Known presets, NULL-terminated, for usage text. */
extern const char *const rs_vmoe_presets[];

/* Converts the vmoe checkpoint at PREFIX to a routerscope-vmoe safetensors file at OUT
 * (F32), and checks that rs_model_open accepts it. On success *SUMMARY (may be NULL)
 * receives a one-line description: "D512 L8 H8 M2048 E8 k2 moe[5,7] 224x224 P32 ...". */
int rs_vmoe_convert(const char *prefix, const char *out, const rs_vmoe_options *opt,
                    char *summary, size_t summary_size, rs_error *err);

/* Writes TENSORS (F32, any order; sorted on output) and METADATA pairs as a safetensors
 * file. NAMES/SHAPES/DATA are parallel arrays of COUNT entries; META is KEY,VALUE,...
 * with META_COUNT pairs. */
typedef struct rs_st_out_tensor {
    const char *name;
    int ndim;
    int64_t shape[RS_VMOE_MAX_DIMS];
    const float *data;
} rs_st_out_tensor;
int rs_safetensors_write_f32(const char *path, const rs_st_out_tensor *tensors, int count,
                             const char *const *meta, int meta_count, rs_error *err);

#endif
