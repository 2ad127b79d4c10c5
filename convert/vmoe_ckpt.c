/* vmoe_ckpt.c — google-research/vmoe checkpoint reader and converter (see vmoe_ckpt.h). */
#include "vmoe_ckpt.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model.h"
#include "safetensors.h"

#define ARRAY_CHUNKS_KEY "__msgpack_array_chunk_a87ca2__"
#define FLAX_CHUNKED_KEY "__msgpack_chunked_array__"

enum { EXT_NDARRAY = 1, EXT_COMPLEX = 2, EXT_NPSCALAR = 3, EXT_SHAPED_ARRAY = 4, EXT_SLICE = 5,
       EXT_SLICE_ND = 6, EXT_SLICE_ND_ARRAY = 7, EXT_INDEX_INFO = 8 };

typedef struct slice_nd {
    int64_t start[RS_VMOE_MAX_DIMS], stop[RS_VMOE_MAX_DIMS]; /* one per dimension, resolved */
} slice_nd;

typedef struct index_leaf {
    int nslices;
    slice_nd *slices;
    int64_t *shards;
    unsigned char *covered; /* (numel) 1 once a value has been written */
} index_leaf;

/* ---- small msgpack helpers ------------------------------------------------------------ */

static bool obj_bytes(const msgpack_object *o, const char **p, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_STR && o->type != MSGPACK_OBJECT_BIN)
        return false;
    *p = o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr : o->via.bin.ptr;
    *n = o->type == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
    /* msgpack-c leaves an empty string's pointer NULL; memcpy and memcmp want a valid
     * one even for 0 bytes (fuzz_convert found the empty dtype name). */
    if (*n == 0)
        *p = "";
    return true;
}

static bool obj_key_is(const msgpack_object *o, const char *key)
{
    const char *p;
    size_t n;
    return obj_bytes(o, &p, &n) && n == strlen(key) && memcmp(p, key, n) == 0;
}

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (obj_key_is(&map->via.map.ptr[i].key, key))
            return &map->via.map.ptr[i].val;
    return NULL;
}

static bool obj_int(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return true;
    }
    return false;
}

/* The big-endian unsigned integer of W bytes at P. */
static uint64_t be_uint(const unsigned char *p, int w)
{
    uint64_t v = 0;
    for (int i = 0; i < w; i++)
        v = v << 8 | p[i];
    return v;
}

/* Walks the msgpack object at the start of DATA without building it: false when a
 * container declares more elements than the bytes left could hold (each takes at least
 * one). msgpack-c allocates a container's elements from its declared count before it
 * reads them, so a 5-byte "array of 2^32" would otherwise ask for 64 GB. */
static bool counts_fit(const unsigned char *data, size_t n)
{
    /* Bytes of the length, count or value after each header byte 0xc4..0xdf (fixext,
     * 0xd4..0xd8, is handled apart). */
    static const unsigned char width[] = {1, 2, 4, 1, 2, 4, 4, 8, 1, 2, 4, 8, 1, 2,
                                          4, 8, 0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4};
    uint64_t pending = 1;
    size_t pos = 0;
    while (pending > 0) {
        if (pos >= n)
            return true; /* out of bytes: msgpack-c reports the truncation itself */
        unsigned b = data[pos++];
        pending--;
        uint64_t skip = 0, items = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc1 || b == 0xc2 || b == 0xc3)
            continue; /* one-byte values (0xc1, invalid, msgpack-c rejects) */
        if (b <= 0x8f) {
            items = 2 * (uint64_t)(b & 0x0f);
        } else if (b <= 0x9f) {
            items = b & 0x0f;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else if (b >= 0xd4 && b <= 0xd8) {
            skip = 1 + (1u << (b - 0xd4)); /* fixext: type byte + 1, 2, 4, 8 or 16 bytes */
        } else {
            unsigned w = width[b - 0xc4];
            if (n - pos < w)
                return true;
            uint64_t v = be_uint(data + pos, (int)w);
            pos += w;
            if (b <= 0xc6 || (b >= 0xd9 && b <= 0xdb))
                skip = v; /* bin, str */
            else if (b <= 0xc9)
                skip = v + 1; /* ext: type byte + data */
            else if (b == 0xdc || b == 0xdd)
                items = v;
            else if (b == 0xde || b == 0xdf)
                items = 2 * v;
            /* else a number: its W bytes were the whole value */
        }
        if (skip > n - pos)
            return true; /* truncated: msgpack-c says so */
        pos += (size_t)skip;
        pending += items;
        if (items && pending > n - pos)
            return false;
    }
    return true;
}

/* Unpacks exactly one object from DATA into U (caller destroys U). WHY gets the problem. */
static bool unpack_one(const char *data, size_t n, msgpack_unpacked *u, const char **why)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    if (!counts_fit((const unsigned char *)data, n)) {
        *why = "a msgpack array or map declares more elements than the data holds";
        return false;
    }
    msgpack_unpack_return r = msgpack_unpack_next(u, data, n, &off);
    if (r == MSGPACK_UNPACK_SUCCESS)
        return true;
    *why = r == MSGPACK_UNPACK_CONTINUE ? "truncated msgpack data"
         : r == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory while unpacking" : "not valid msgpack";
    return false;
}

static int read_file(const char *path, char **data, size_t *size, rs_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rs_error_set(err, RS_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return rs_error_set(err, RS_EIO, "%s: read error", path);
    }
    *data = buf;
    *size = n;
    return 0;
}

/* ---- ext payloads ------------------------------------------------------------------- */

/* Slice payload: [start, stop, step] with nil for "from the start", "to the end", step 1. */
static const char *decode_slice(const char *data, size_t n, int64_t dim, int64_t *start, int64_t *stop)
{
    msgpack_unpacked u;
    const char *why = NULL;
    if (!unpack_one(data, n, &u, &why)) {
        msgpack_unpacked_destroy(&u);
        return "slice: not valid msgpack";
    }
    const msgpack_object *o = &u.data;
    int64_t v[3] = {0, dim, 1};
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
        why = "slice is not [start, stop, step]";
    for (int i = 0; !why && i < 3; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_NIL && !obj_int(e, &v[i]))
            why = "slice bound is not an integer";
    }
    msgpack_unpacked_destroy(&u);
    if (why)
        return why;
    if (v[2] != 1)
        return "slice with a step other than 1 is not supported";
    if (v[0] < 0 || v[1] > dim || v[0] >= v[1])
        return "slice outside the array's shape";
    *start = v[0];
    *stop = v[1];
    return NULL;
}

/* slice_nd payload: [slice bytes...], at most NDIM; missing trailing dimensions are whole. */
static const char *decode_slice_nd(const char *data, size_t n, const rs_vmoe_array *a, slice_nd *s)
{
    msgpack_unpacked u;
    const char *why = NULL;
    if (!unpack_one(data, n, &u, &why)) {
        msgpack_unpacked_destroy(&u);
        return "slice_nd: not valid msgpack";
    }
    const msgpack_object *o = &u.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || (int)o->via.array.size > a->ndim)
        why = "slice_nd is not a list of at most ndim slices";
    for (int d = 0; !why && d < a->ndim; d++) {
        s->start[d] = 0;
        s->stop[d] = a->shape[d];
        if (d < (int)o->via.array.size) {
            const char *p;
            size_t len;
            if (!obj_bytes(&o->via.array.ptr[d], &p, &len))
                why = "slice_nd element is not bytes";
            else
                why = decode_slice(p, len, a->shape[d], &s->start[d], &s->stop[d]);
        }
    }
    msgpack_unpacked_destroy(&u);
    return why;
}

/* A slice_nd given as ext 6 (in shard files). */
static const char *ext_slice_nd(const msgpack_object *o, const rs_vmoe_array *a, slice_nd *s)
{
    if (o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != EXT_SLICE_ND)
        return "global slice is not a slice_nd (ext 6)";
    return decode_slice_nd(o->via.ext.ptr, o->via.ext.size, a, s);
}

static bool float_dtype(const char *name, rs_dtype *dt)
{
    if (!strcmp(name, "float32"))
        *dt = RS_DTYPE_F32;
    else if (!strcmp(name, "float16"))
        *dt = RS_DTYPE_F16;
    else if (!strcmp(name, "bfloat16"))
        *dt = RS_DTYPE_BF16;
    else
        return false;
    return true;
}

/* shaped_array payload: [shape, dtype name, weak_type, {}] into A's shape and dtype. */
static const char *decode_shaped_array(const char *data, size_t n, rs_vmoe_array *a)
{
    msgpack_unpacked u;
    const char *why = NULL, *p;
    size_t len;
    if (!unpack_one(data, n, &u, &why)) {
        msgpack_unpacked_destroy(&u);
        return "shaped array: not valid msgpack";
    }
    const msgpack_object *o = &u.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2 ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_ARRAY)
        why = "shaped array is not [shape, dtype, ...]";
    else if (o->via.array.ptr[0].via.array.size > RS_VMOE_MAX_DIMS)
        why = "more than 8 dimensions";
    else if (!obj_bytes(&o->via.array.ptr[1], &p, &len) || len >= sizeof a->dtype)
        why = "dtype name is not a short string";
    if (!why) {
        memcpy(a->dtype, p, len);
        a->dtype[len] = 0;
        const msgpack_object *shape = &o->via.array.ptr[0];
        a->ndim = (int)shape->via.array.size;
        a->numel = 1;
        for (int d = 0; !why && d < a->ndim; d++) {
            if (!obj_int(&shape->via.array.ptr[d], &a->shape[d]) || a->shape[d] < 0 ||
                a->shape[d] > ((int64_t)1 << 40) / (a->numel ? a->numel : 1))
                why = "bad dimension in shape";
            else
                a->numel *= a->shape[d];
        }
        rs_dtype dt;
        a->is_float = float_dtype(a->dtype, &dt);
    }
    msgpack_unpacked_destroy(&u);
    return why;
}

/* index_info payload: [shaped_array bytes, [slice_nd bytes...], [shard...]]. */
static const char *decode_index_info(const char *data, size_t n, rs_vmoe_array *a, index_leaf *leaf)
{
    msgpack_unpacked u;
    const char *why = NULL, *p;
    size_t len;
    if (!unpack_one(data, n, &u, &why)) {
        msgpack_unpacked_destroy(&u);
        return "index_info: not valid msgpack";
    }
    const msgpack_object *o = &u.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3 ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY || o->via.array.ptr[2].type != MSGPACK_OBJECT_ARRAY ||
        o->via.array.ptr[1].via.array.size != o->via.array.ptr[2].via.array.size)
        why = "index_info is not [shaped_array, slices, shards] with one shard per slice";
    else if (!obj_bytes(&o->via.array.ptr[0], &p, &len))
        why = "index_info global shape is not bytes";
    else
        why = decode_shaped_array(p, len, a);
    if (!why) {
        leaf->nslices = (int)o->via.array.ptr[1].via.array.size;
        leaf->slices = calloc((size_t)leaf->nslices + 1, sizeof *leaf->slices);
        leaf->shards = calloc((size_t)leaf->nslices + 1, sizeof *leaf->shards);
        if (!leaf->slices || !leaf->shards)
            why = "out of memory";
        for (int i = 0; !why && i < leaf->nslices; i++) {
            if (!obj_bytes(&o->via.array.ptr[1].via.array.ptr[i], &p, &len))
                why = "index_info slice is not bytes";
            else if (!(why = decode_slice_nd(p, len, a, &leaf->slices[i])) &&
                     (!obj_int(&o->via.array.ptr[2].via.array.ptr[i], &leaf->shards[i]) || leaf->shards[i] < 0))
                why = "index_info shard is not a non-negative integer";
        }
    }
    msgpack_unpacked_destroy(&u);
    return why;
}

/* ---- the index tree ----------------------------------------------------------------- */

typedef struct reader {
    const char *prefix;
    char path[4096];
    rs_vmoe_ckpt *ck;
    index_leaf *leaves;
    int cap;
    int64_t shard_count;
} reader;

static int cmp_kv(const void *a, const void *b)
{
    const msgpack_object_kv *x = *(const msgpack_object_kv *const *)a, *y = *(const msgpack_object_kv *const *)b;
    const char *px = "", *py = "";
    size_t nx = 0, ny = 0;
    obj_bytes(&x->key, &px, &nx);
    obj_bytes(&y->key, &py, &ny);
    int c = memcmp(px, py, nx < ny ? nx : ny);
    return c ? c : (nx > ny) - (nx < ny);
}

/* Depth-first over TREE with sorted keys (jax.tree_flatten's order for dicts). */
static int walk_index(reader *r, const msgpack_object *tree, const char *path, rs_error *err)
{
    if (tree->type == MSGPACK_OBJECT_NIL)
        return 0; /* None: no leaf */
    if (tree->type == MSGPACK_OBJECT_MAP) {
        uint32_t n = tree->via.map.size;
        const msgpack_object_kv **kv = calloc(n + 1, sizeof *kv);
        if (!kv)
            return rs_error_set(err, RS_ENOMEM, "%s: out of memory", r->path);
        for (uint32_t i = 0; i < n; i++) {
            kv[i] = &tree->via.map.ptr[i];
            const char *p;
            size_t len;
            if (!obj_bytes(&kv[i]->key, &p, &len)) {
                free(kv);
                return rs_error_set(err, RS_EFORMAT, "%s: tree node '%s' has a key that is not a string",
                                    r->path, path);
            }
        }
        qsort(kv, n, sizeof *kv, cmp_kv);
        int rc = 0;
        for (uint32_t i = 0; !rc && i < n; i++) {
            const char *p = "";
            size_t len = 0;
            obj_bytes(&kv[i]->key, &p, &len);
            size_t pl = strlen(path);
            char *child = malloc(pl + len + 2);
            if (!child) {
                rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", r->path);
                break;
            }
            snprintf(child, pl + len + 2, "%s%s%.*s", path, pl ? "/" : "", (int)len, p);
            rc = walk_index(r, &kv[i]->val, child, err);
            free(child);
        }
        free(kv);
        return rc;
    }
    if (tree->type != MSGPACK_OBJECT_EXT)
        return rs_error_set(err, RS_EFORMAT, "%s: leaf '%s' is not an IndexInfo (msgpack type %d)", r->path,
                            path, (int)tree->type);
    if (tree->via.ext.type != EXT_INDEX_INFO)
        return rs_error_set(err, RS_EFORMAT, "%s: leaf '%s' has ext type %d, expected index_info (8)%s",
                            r->path, path, (int)tree->via.ext.type,
                            tree->via.ext.type >= 1 && tree->via.ext.type <= 7 ? "" : " (unknown ext type)");
    rs_vmoe_ckpt *ck = r->ck;
    if (ck->count == r->cap) {
        int cap = r->cap ? r->cap * 2 : 64;
        rs_vmoe_array *na = realloc(ck->arrays, sizeof *na * cap);
        if (na)
            ck->arrays = na;
        index_leaf *nl = realloc(r->leaves, sizeof *nl * cap);
        if (nl)
            r->leaves = nl;
        if (!na || !nl)
            return rs_error_set(err, RS_ENOMEM, "%s: out of memory", r->path);
        r->cap = cap;
    }
    rs_vmoe_array *a = &ck->arrays[ck->count];
    index_leaf *leaf = &r->leaves[ck->count];
    memset(a, 0, sizeof *a);
    memset(leaf, 0, sizeof *leaf);
    ck->count++;
    if (!(a->name = strdup(path)))
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", r->path);
    const char *why = decode_index_info(tree->via.ext.ptr, tree->via.ext.size, a, leaf);
    if (why)
        return rs_error_set(err, RS_EFORMAT, "%s: array '%s': %s", r->path, path, why);
    for (int i = 0; i < leaf->nslices; i++)
        if (leaf->shards[i] >= r->shard_count)
            return rs_error_set(err, RS_EFORMAT, "%s: array '%s': shard %" PRId64 " but shard_count is %" PRId64,
                                r->path, path, leaf->shards[i], r->shard_count);
    if (a->is_float) {
        a->data = calloc((size_t)a->numel + 1, sizeof(float));
        leaf->covered = calloc((size_t)a->numel + 1, 1);
        if (!a->data || !leaf->covered)
            return rs_error_set(err, RS_ENOMEM, "%s: array '%s': out of memory", r->path, path);
    }
    return 0;
}

/* ---- shards --------------------------------------------------------------------------- */

typedef struct chunk_buf {
    float *v;
    int64_t n, cap;
} chunk_buf;

/* Appends the values of a subchunk: an ndarray ext or flax's chunked-array map. */
static const char *append_values(const msgpack_object *o, chunk_buf *c, int depth)
{
    if (o->type == MSGPACK_OBJECT_MAP && map_get(o, FLAX_CHUNKED_KEY) && depth < 4) {
        const msgpack_object *chunks = map_get(o, "chunks");
        if (!chunks || chunks->type != MSGPACK_OBJECT_MAP)
            return "chunked array without a 'chunks' map";
        for (uint32_t i = 0; i < chunks->via.map.size; i++) {
            char key[24];
            snprintf(key, sizeof key, "%u", i);
            const msgpack_object *part = map_get(chunks, key);
            if (!part)
                return "chunked array 'chunks' keys are not 0..n-1";
            const char *why = append_values(part, c, depth + 1);
            if (why)
                return why;
        }
        return NULL;
    }
    if (o->type != MSGPACK_OBJECT_EXT)
        return "subchunk is not an ndarray";
    if (o->via.ext.type != EXT_NDARRAY) {
        static const char *const names[] = {"", "", "native complex (2)", "numpy scalar (3)", "shaped array (4)",
                                            "slice (5)", "slice_nd (6)", "slice_nd array (7)", "index_info (8)"};
        int t = o->via.ext.type;
        return t >= 2 && t <= 8 ? names[t] : "unknown ext type";
    }
    msgpack_unpacked u;
    const char *why = NULL, *p = NULL, *raw = NULL;
    size_t len = 0, nraw = 0;
    if (!unpack_one(o->via.ext.ptr, o->via.ext.size, &u, &why)) {
        msgpack_unpacked_destroy(&u);
        return "ndarray: not valid msgpack";
    }
    const msgpack_object *t = &u.data;
    char dtype[16];
    rs_dtype dt = RS_DTYPE_F32;
    int64_t numel = 1;
    if (t->type != MSGPACK_OBJECT_ARRAY || t->via.array.size != 3 || t->via.array.ptr[0].type != MSGPACK_OBJECT_ARRAY ||
        !obj_bytes(&t->via.array.ptr[1], &p, &len) || !obj_bytes(&t->via.array.ptr[2], &raw, &nraw))
        why = "ndarray is not [shape, dtype, bytes]";
    else if (len >= sizeof dtype)
        why = "ndarray dtype name too long";
    if (!why) {
        memcpy(dtype, p, len);
        dtype[len] = 0;
        if (!float_dtype(dtype, &dt))
            why = "ndarray dtype is not float32, float16 or bfloat16";
        for (uint32_t d = 0; !why && d < t->via.array.ptr[0].via.array.size; d++) {
            int64_t s;
            if (!obj_int(&t->via.array.ptr[0].via.array.ptr[d], &s) || s < 0 || s > ((int64_t)1 << 40))
                why = "ndarray has a bad dimension";
            else
                numel *= s;
        }
    }
    if (!why && (uint64_t)numel * rs_dtype_size(dt) != nraw)
        why = "ndarray byte count does not match its shape";
    if (!why && c->n + numel > c->cap)
        why = "chunk holds more values than its slice";
    if (!why) {
        rs_dtype_to_f32(dt, raw, c->v + c->n, (size_t)numel);
        c->n += numel;
    }
    msgpack_unpacked_destroy(&u);
    return why;
}

static void fmt_slice(const rs_vmoe_array *a, const slice_nd *s, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < a->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64 ":%" PRId64, d ? "," : "", s->start[d],
                                 s->stop[d]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

/* Copies a chunk (the slice's values, row-major) into the global array. */
static const char *scatter(rs_vmoe_array *a, index_leaf *leaf, const slice_nd *s, const float *v)
{
    int nd = a->ndim;
    if (nd == 0) {
        if (leaf->covered[0])
            return "slices overlap";
        a->data[0] = v[0];
        leaf->covered[0] = 1;
        return NULL;
    }
    int64_t idx[RS_VMOE_MAX_DIMS], stride[RS_VMOE_MAX_DIMS];
    stride[nd - 1] = 1;
    for (int d = nd - 2; d >= 0; d--)
        stride[d] = stride[d + 1] * a->shape[d + 1];
    for (int d = 0; d < nd; d++)
        idx[d] = s->start[d];
    int64_t run = s->stop[nd - 1] - s->start[nd - 1], k = 0;
    for (;;) {
        int64_t off = 0;
        for (int d = 0; d < nd; d++)
            off += idx[d] * stride[d];
        for (int64_t j = 0; j < run; j++) {
            if (leaf->covered[off + j])
                return "slices overlap";
            leaf->covered[off + j] = 1;
        }
        memcpy(a->data + off, v + k, sizeof(float) * (size_t)run);
        k += run;
        int d = nd - 2;
        for (; d >= 0; d--) {
            if (++idx[d] < s->stop[d])
                break;
            idx[d] = s->start[d];
        }
        if (d < 0)
            return NULL;
    }
}

static int read_shard(reader *r, int64_t shard, rs_error *err)
{
    snprintf(r->path, sizeof r->path, "%s.data-%05" PRId64 "-of-%05" PRId64, r->prefix, shard, r->shard_count);
    char *data;
    size_t size;
    int rc = read_file(r->path, &data, &size, err);
    if (rc)
        return rc;
    msgpack_unpacked u;
    const char *why = NULL;
    if (!unpack_one(data, size, &u, &why)) {
        msgpack_unpacked_destroy(&u);
        free(data);
        return rs_error_set(err, RS_EFORMAT, "%s: %s", r->path, why);
    }
    const msgpack_object *root = &u.data;
    const msgpack_object *magic = map_get(root, ARRAY_CHUNKS_KEY);
    if (!magic)
        rc = rs_error_set(err, RS_EFORMAT, "%s: not a vmoe checkpoint shard (no %s map)", r->path, ARRAY_CHUNKS_KEY);
    chunk_buf c = {0};
    for (uint32_t i = 0; !rc && i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        if (obj_key_is(&kv->key, ARRAY_CHUNKS_KEY))
            continue;
        const char *p;
        size_t len;
        char key[24], *end;
        if (!obj_bytes(&kv->key, &p, &len) || len == 0 || len >= sizeof key) {
            rc = rs_error_set(err, RS_EFORMAT, "%s: key is not an array index", r->path);
            break;
        }
        memcpy(key, p, len);
        key[len] = 0;
        long index = strtol(key, &end, 10);
        if (*end || index < 0 || index >= r->ck->count) {
            rc = rs_error_set(err, RS_EFORMAT, "%s: array index '%s' is not one of the %d in the index", r->path, key,
                              r->ck->count);
            break;
        }
        rs_vmoe_array *a = &r->ck->arrays[index];
        index_leaf *leaf = &r->leaves[index];
        if (!a->is_float)
            continue;
        if (kv->val.type != MSGPACK_OBJECT_ARRAY) {
            rc = rs_error_set(err, RS_EFORMAT, "%s: array %ld (%s): chunks are not a list", r->path, index, a->name);
            break;
        }
        for (uint32_t j = 0; !rc && j < kv->val.via.array.size; j++) {
            const msgpack_object *pair = &kv->val.via.array.ptr[j];
            slice_nd s;
            if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2 ||
                pair->via.array.ptr[0].type != MSGPACK_OBJECT_ARRAY)
                why = "chunk is not [subchunks, global slice]";
            else
                why = ext_slice_nd(&pair->via.array.ptr[1], a, &s);
            int64_t vol = 1;
            for (int d = 0; !why && d < a->ndim; d++)
                vol *= s.stop[d] - s.start[d];
            if (!why && vol > c.cap) {
                float *nv = realloc(c.v, sizeof(float) * (size_t)vol);
                if (!nv)
                    why = "out of memory";
                else
                    c.v = nv, c.cap = vol;
            }
            c.n = 0;
            const msgpack_object *subs = why ? NULL : &pair->via.array.ptr[0];
            int64_t cap = c.cap;
            c.cap = vol; /* append_values refuses to overrun the slice */
            for (uint32_t k = 0; !why && k < subs->via.array.size; k++)
                why = append_values(&subs->via.array.ptr[k], &c, 0);
            c.cap = cap;
            char sl[160];
            if (!why && c.n != vol) {
                fmt_slice(a, &s, sl, sizeof sl);
                rc = rs_error_set(err, RS_EFORMAT, "%s: array %ld (%s): chunk has %" PRId64 " values but slice %s holds %" PRId64
                                  " (shape mismatch)", r->path, index, a->name, c.n, sl, vol);
                break;
            }
            if (!why)
                why = scatter(a, leaf, &s, c.v);
            if (why)
                rc = rs_error_set(err, RS_EFORMAT, "%s: array %ld (%s): %s", r->path, index, a->name, why);
        }
    }
    free(c.v);
    msgpack_unpacked_destroy(&u);
    free(data);
    return rc;
}

void rs_vmoe_ckpt_free(rs_vmoe_ckpt *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->count; i++) {
        free(ck->arrays[i].name);
        free(ck->arrays[i].data);
    }
    free(ck->arrays);
    free(ck);
}

const rs_vmoe_array *rs_vmoe_ckpt_find(const rs_vmoe_ckpt *ck, const char *path)
{
    for (int i = 0; i < ck->count; i++)
        if (!strcmp(ck->arrays[i].name, path))
            return &ck->arrays[i];
    return NULL;
}

int rs_vmoe_ckpt_read(const char *prefix, rs_vmoe_ckpt **out, rs_error *err)
{
    *out = NULL;
    reader r = {.prefix = prefix};
    snprintf(r.path, sizeof r.path, "%s.index", prefix);
    char *data;
    size_t size;
    int rc = read_file(r.path, &data, &size, err);
    if (rc)
        return rc;
    if (!(r.ck = calloc(1, sizeof *r.ck))) {
        free(data);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", r.path);
    }
    msgpack_unpacked u;
    const char *why = NULL;
    const msgpack_object *tree = NULL, *count = NULL;
    if (!unpack_one(data, size, &u, &why))
        rc = rs_error_set(err, RS_EFORMAT, "%s: %s", r.path, why);
    else if (!(tree = map_get(&u.data, "index")) || !(count = map_get(&u.data, "shard_count")))
        rc = rs_error_set(err, RS_EFORMAT, "%s: not a vmoe checkpoint index (no 'index' and 'shard_count')", r.path);
    else if (!obj_int(count, &r.shard_count) || r.shard_count < 1 || r.shard_count > 99999)
        rc = rs_error_set(err, RS_EFORMAT, "%s: shard_count is not an integer in 1..99999", r.path);
    else if (map_get(&u.data, "version") && !obj_key_is(map_get(&u.data, "version"), "20220622"))
        rc = rs_error_set(err, RS_EFORMAT, "%s: unsupported checkpoint version (only 20220622 is known)", r.path);
    if (!rc)
        rc = walk_index(&r, tree, "", err);
    msgpack_unpacked_destroy(&u);
    free(data);
    if (!rc && r.ck->count == 0)
        rc = rs_error_set(err, RS_EFORMAT, "%s: the index holds no arrays", r.path);
    /* Every shard that holds a slice of a float array, in order. */
    for (int64_t s = 0; !rc && s < r.shard_count; s++) {
        bool used = false;
        for (int i = 0; !used && i < r.ck->count; i++)
            for (int j = 0; r.ck->arrays[i].is_float && j < r.leaves[i].nslices; j++)
                used |= r.leaves[i].shards[j] == s;
        if (used)
            rc = read_shard(&r, s, err);
    }
    for (int i = 0; !rc && i < r.ck->count; i++) {
        const rs_vmoe_array *a = &r.ck->arrays[i];
        int64_t got = 0;
        for (int64_t k = 0; a->is_float && k < a->numel; k++)
            got += r.leaves[i].covered[k];
        if (a->is_float && got != a->numel)
            rc = rs_error_set(err, RS_EFORMAT, "%s: array %d (%s): the shards hold %" PRId64 " of its %" PRId64
                              " values (incomplete checkpoint, or a layout such as expert-parallel shards that cannot"
                              " be assembled)", prefix, i, a->name, got, a->numel);
    }
    for (int i = 0; i < r.ck->count; i++) {
        free(r.leaves[i].slices);
        free(r.leaves[i].shards);
        free(r.leaves[i].covered);
    }
    free(r.leaves);
    if (rc) {
        rs_vmoe_ckpt_free(r.ck);
        return rc;
    }
    *out = r.ck;
    return 0;
}

/* ---- safetensors writer ----------------------------------------------------------------- */

static int cmp_out(const void *a, const void *b)
{
    return strcmp(((const rs_st_out_tensor *)a)->name, ((const rs_st_out_tensor *)b)->name);
}

int rs_safetensors_write_f32(const char *path, const rs_st_out_tensor *tensors, int count,
                             const char *const *meta, int meta_count, rs_error *err)
{
    rs_st_out_tensor *t = malloc(sizeof *t * ((size_t)count + 1));
    if (!t)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);
    memcpy(t, tensors, sizeof *t * (size_t)count);
    qsort(t, (size_t)count, sizeof *t, cmp_out);
    json_t *hdr = json_object(), *md = json_object();
    for (int i = 0; i < meta_count; i++)
        json_object_set_new(md, meta[2 * i], json_string(meta[2 * i + 1]));
    json_object_set_new(hdr, "__metadata__", md);
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
        json_t *shape = json_array();
        size_t n = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            json_array_append_new(shape, json_integer(t[i].shape[d]));
            n *= (size_t)t[i].shape[d];
        }
        json_object_set_new(hdr, t[i].name, json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                                                      "data_offsets", (json_int_t)offset,
                                                      (json_int_t)(offset + n * sizeof(float))));
        offset += n * sizeof(float);
    }
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(hdr);
    int rc = 0;
    FILE *f = NULL;
    if (!text) {
        rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);
    } else if (!(f = fopen(path, "wb"))) {
        rc = rs_error_set(err, RS_EIO, "%s: cannot create: %s", path, strerror(errno));
    } else {
        size_t len = strlen(text), pad = (8 - (8 + len) % 8) % 8;
        uint64_t n = len + pad;
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (unsigned char)(n >> (8 * i));
        bool ok = fwrite(le, 1, 8, f) == 8 && fwrite(text, 1, len, f) == len;
        for (size_t i = 0; ok && i < pad; i++)
            ok = fputc(' ', f) != EOF;
        for (int i = 0; ok && i < count; i++) {
            size_t m = 1;
            for (int d = 0; d < t[i].ndim; d++)
                m *= (size_t)t[i].shape[d];
            ok = fwrite(t[i].data, sizeof(float), m, f) == m;
        }
        if (fclose(f) != 0)
            ok = false;
        if (!ok)
            rc = rs_error_set(err, RS_EIO, "%s: write error: %s", path, strerror(errno));
    }
    free(text);
    free(t);
    return rc;
}

/* ---- the conversion ----------------------------------------------------------------- */

const char *const rs_vmoe_presets[] = {"vmoe-s32-last2", "vmoe-s32-last2-ft384", "vmoe-b16-ft384", "vmoe-attack",
                                       NULL};

/* What each preset knows that the tensors cannot tell: k, and the dispatch its vmoe config
 * evaluates with (google-research/vmoe, files under vmoe/; docs/checkpoint.md cites them).
 * Every vmoe_paper config dispatches with 'einsum', 'bfloat16': True and batch_priority
 * False (configs/vmoe_paper/common.py, get_vmoe_config), in groups of 8 images' tokens
 * (min_batch_size_per_device = 8); the capacity factor is the file's own. */
typedef struct preset {
    const char *name;
    int top_k;
    double capacity_factor;
    int group_images;
    bool bpr, bf16;
} preset;

static const preset PRESETS[] = {
    /* configs/vmoe_paper/vmoe_s32_last2_ilsvrc2012_randaug_light1.py: evaluate.model_overrides
     * sets capacity_factor 4.0 ("Use higher capacity for evaluation"). */
    {"vmoe-s32-last2", 2, 4.0, 8, false, true},
    /* configs/vmoe_paper/vmoe_s32_last2_ilsvrc2012_randaug_light1_ft_ilsvrc2012.py (384 px):
     * get_vmoe_config sets capacity_factor 1.5, no evaluation override. */
    {"vmoe-s32-last2-ft384", 2, 1.5, 8, false, true},
    /* configs/vmoe_paper/vmoe_b16_imagenet21k_randaug_strong_ft_ilsvrc2012.py (384 px): 1.5. */
    {"vmoe-b16-ft384", 2, 1.5, 8, false, true},
    /* projects/adversarial_attacks/configs/attack/ilsvrc2012.py, the attack study: the B/16
     * fine-tune above with capacity_factor 1.5, group_size ((384 // 16)**2 + 1) * 4: 4 images. */
    {"vmoe-attack", 2, 1.5, 4, false, true},
};

static const preset *find_preset(const char *name)
{
    for (size_t i = 0; name && i < sizeof PRESETS / sizeof *PRESETS; i++)
        if (!strcmp(PRESETS[i].name, name))
            return &PRESETS[i];
    return NULL;
}

#define MAX_OUT (16 + 20 * RS_MAX_DEPTH)

typedef struct conv {
    const rs_vmoe_ckpt *ck;
    const char *prefix;
    char root[32];
    rs_st_out_tensor t[MAX_OUT];
    char names[MAX_OUT][640];
    int n;
    float *owned[MAX_OUT];
    int nowned;
} conv;

/* The float array at ROOT/NAME with NDIM dims; WANT (-1 = any) checked. NULL + error. */
static const rs_vmoe_array *need(conv *cv, const char *name, int ndim, const int64_t *want, rs_error *err)
{
    char path[704];
    snprintf(path, sizeof path, "%s%s", cv->root, name);
    const rs_vmoe_array *a = rs_vmoe_ckpt_find(cv->ck, path);
    if (!a) {
        rs_error_set(err, RS_EFORMAT, "%s: no array '%s'", cv->prefix, path);
        return NULL;
    }
    if (!a->is_float) {
        rs_error_set(err, RS_EFORMAT, "%s: array '%s' has dtype %s (float32, float16 or bfloat16 expected)",
                     cv->prefix, path, a->dtype);
        return NULL;
    }
    bool ok = a->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = want[d] < 0 || want[d] == a->shape[d];
    if (!ok) {
        char got[96], exp[96];
        int64_t w[RS_VMOE_MAX_DIMS];
        for (int d = 0; d < ndim; d++)
            w[d] = want[d];
        rs_shape_str(a->shape, a->ndim, got, sizeof got);
        rs_shape_str(w, ndim, exp, sizeof exp);
        rs_error_set(err, RS_EFORMAT, "%s: array '%s' has shape %s, expected %s (-1: any)", cv->prefix, path, got, exp);
        return NULL;
    }
    return a;
}

static bool has(conv *cv, const char *name)
{
    char path[704];
    snprintf(path, sizeof path, "%s%s", cv->root, name);
    return rs_vmoe_ckpt_find(cv->ck, path) != NULL;
}

static float *new_buf(conv *cv, size_t n)
{
    float *b = malloc(sizeof(float) * (n ? n : 1));
    if (b)
        cv->owned[cv->nowned++] = b;
    return b;
}

static void emit(conv *cv, const char *name, const float *data, int ndim, int64_t s0, int64_t s1, int64_t s2, int64_t s3)
{
    rs_st_out_tensor *t = &cv->t[cv->n];
    snprintf(cv->names[cv->n], sizeof cv->names[cv->n], "%s", name);
    t->name = cv->names[cv->n++];
    t->ndim = ndim;
    int64_t s[4] = {s0, s1, s2, s3};
    for (int d = 0; d < ndim; d++)
        t->shape[d] = s[d];
    t->data = data;
}

/* dst (B, C, R) = src (B, R, C) transposed per batch. */
static void transpose(float *dst, const float *src, int64_t B, int64_t R, int64_t C)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++)
                dst[(b * C + c) * R + r] = src[(b * R + r) * C + c];
}

/* A Dense kernel (in, out) [+ bias (out)] as torch weight (out, in) [+ bias]. */
static int dense(conv *cv, const char *flax, const char *ours, int64_t in, int64_t out, bool bias, rs_error *err)
{
    char name[640];
    snprintf(name, sizeof name, "%s/kernel", flax);
    const rs_vmoe_array *k = need(cv, name, 2, (int64_t[]){in, out}, err);
    if (!k)
        return err ? err->code : RS_EFORMAT;
    float *w = new_buf(cv, (size_t)(in * out));
    if (!w)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    transpose(w, k->data, 1, in, out);
    snprintf(name, sizeof name, "%s.weight", ours);
    emit(cv, name, w, 2, out, in, 0, 0);
    if (bias) {
        snprintf(name, sizeof name, "%s/bias", flax);
        const rs_vmoe_array *b = need(cv, name, 1, (int64_t[]){out}, err);
        if (!b)
            return err ? err->code : RS_EFORMAT;
        snprintf(name, sizeof name, "%s.bias", ours);
        emit(cv, name, b->data, 1, out, 0, 0, 0);
    }
    return 0;
}

static int layer_norm(conv *cv, const char *flax, const char *ours, int64_t D, rs_error *err)
{
    char name[640];
    snprintf(name, sizeof name, "%s/scale", flax);
    const rs_vmoe_array *s = need(cv, name, 1, (int64_t[]){D}, err);
    snprintf(name, sizeof name, "%s/bias", flax);
    const rs_vmoe_array *b = s ? need(cv, name, 1, (int64_t[]){D}, err) : NULL;
    if (!b)
        return err ? err->code : RS_EFORMAT;
    snprintf(name, sizeof name, "%s.weight", ours);
    emit(cv, name, s->data, 1, D, 0, 0, 0);
    snprintf(name, sizeof name, "%s.bias", ours);
    emit(cv, name, b->data, 1, D, 0, 0, 0);
    return 0;
}

static const char *first_present(conv *cv, const char *block, const char *const *alts, const char *leaf)
{
    char name[640];
    for (int i = 0; alts[i]; i++) {
        snprintf(name, sizeof name, "%s/%s/%s", block, alts[i], leaf);
        if (has(cv, name))
            return alts[i];
    }
    return NULL;
}

static int convert(conv *cv, const rs_vmoe_options *opt, const char *out, char *summary, size_t summary_size,
                   rs_error *err)
{
    static const char *const roots[] = {"", "params/", "target/", "opt_state/target/", "optimizer/target/", NULL};
    for (int i = 0; roots[i]; i++) {
        snprintf(cv->root, sizeof cv->root, "%s", roots[i]);
        if (has(cv, "Encoder/encoder_norm/scale"))
            break;
        cv->root[0] = 0;
        if (!roots[i + 1])
            return rs_error_set(err, RS_EFORMAT, "%s: no Encoder/encoder_norm/scale at the tree's root, params/ or "
                                "target/: not a V-MoE ViT checkpoint", cv->prefix);
    }
    const preset *pre = find_preset(opt->preset);
    if (opt->preset && !pre)
        return rs_error_set(err, RS_EINVAL, "unknown preset '%s' (known: vmoe-s32-last2, vmoe-s32-last2-ft384, "
                            "vmoe-b16-ft384, vmoe-attack)", opt->preset);
    if (has(cv, "MapHead/probe"))
        return rs_error_set(err, RS_EFORMAT, "%s: classifier 'map' (MapHead) is not supported", cv->prefix);

    const int64_t any4[4] = {-1, -1, -1, -1};
    const rs_vmoe_array *ek = need(cv, "embedding/kernel", 4, any4, err);
    if (!ek)
        return err->code;
    int64_t P = ek->shape[0], C = ek->shape[2], D = ek->shape[3];
    if (ek->shape[1] != P)
        return rs_error_set(err, RS_EFORMAT, "%s: embedding kernel is %" PRId64 "x%" PRId64 ": only square patches are"
                            " supported", cv->prefix, P, ek->shape[1]);
    float *pw = new_buf(cv, (size_t)(P * P * C * D));
    if (!pw)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    for (int64_t i = 0; i < P; i++) /* HWIO (P,P,C,D) -> OIHW (D,C,P,P) */
        for (int64_t j = 0; j < P; j++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t d = 0; d < D; d++)
                    pw[((d * C + c) * P + i) * P + j] = ek->data[((i * P + j) * C + c) * D + d];
    emit(cv, "patch_embed.weight", pw, 4, D, C, P, P);
    const rs_vmoe_array *eb = need(cv, "embedding/bias", 1, (int64_t[]){D}, err);
    if (!eb)
        return err->code;
    emit(cv, "patch_embed.bias", eb->data, 1, D, 0, 0, 0);

    bool token = has(cv, "cls");
    if (opt->classifier >= 0 && (opt->classifier == RS_CLASSIFIER_TOKEN) != token)
        return rs_error_set(err, RS_EINVAL, "%s: --classifier %s but the checkpoint %s a 'cls' token", cv->prefix,
                            token ? "gap" : "token", token ? "has" : "has no");
    if (token) {
        const rs_vmoe_array *cls = need(cv, "cls", 3, (int64_t[]){1, 1, D}, err);
        if (!cls)
            return err->code;
        emit(cv, "cls_token", cls->data, 3, 1, 1, D, 0);
    }
    const rs_vmoe_array *pe = need(cv, "Encoder/posembed_input/pos_embedding", 3, (int64_t[]){1, -1, D}, err);
    if (!pe)
        return err->code;
    int64_t T = pe->shape[1], N = T - token, g = 0;
    while ((g + 1) * (g + 1) <= N)
        g++;
    int64_t image = opt->image_size > 0 ? opt->image_size : g * P;
    if (image % P || (image / P) * (image / P) != N)
        return rs_error_set(err, RS_EFORMAT, "%s: pos_embedding has %" PRId64 " patch tokens, which is not a square "
                            "grid of %" PRId64 "-pixel patches%s", cv->prefix, N, P,
                            opt->image_size > 0 ? " for --image-size" : "");
    emit(cv, "pos_embed", pe->data, 3, 1, T, D, 0);

    int depth = 0;
    char block[64], name[512], ours[128];
    for (;; depth++) {
        snprintf(name, sizeof name, "Encoder/encoderblock_%d/LayerNorm_0/scale", depth);
        if (!has(cv, name))
            break;
        if (depth == RS_MAX_DEPTH)
            return rs_error_set(err, RS_EFORMAT, "%s: more than %d encoder blocks", cv->prefix, RS_MAX_DEPTH);
    }
    if (depth == 0)
        return rs_error_set(err, RS_EFORMAT, "%s: no Encoder/encoderblock_0", cv->prefix);

    static const char *const attn_names[] = {"SelfAttention", "MultiHeadDotProductAttention_1", NULL};
    static const char *const mlp_names[] = {"Mlp", "MlpBlock_3", NULL};
    int64_t H = 0, M = 0, E = 0;
    int moe[RS_MAX_DEPTH], num_moe = 0;
    bool router_bias = false;
    for (int i = 0; i < depth; i++) {
        snprintf(block, sizeof block, "Encoder/encoderblock_%d", i);
        snprintf(name, sizeof name, "%s/LayerNorm_0", block);
        snprintf(ours, sizeof ours, "blocks.%d.norm1", i);
        int rc = layer_norm(cv, name, ours, D, err);
        snprintf(name, sizeof name, "%s/LayerNorm_1", block);
        snprintf(ours, sizeof ours, "blocks.%d.norm2", i);
        if (rc || (rc = layer_norm(cv, name, ours, D, err)))
            return rc;
        const char *attn = first_present(cv, block, attn_names, "query/kernel");
        if (!attn)
            return rs_error_set(err, RS_EFORMAT, "%s: %s has no SelfAttention (or MultiHeadDotProductAttention_1)",
                                cv->prefix, block);
        snprintf(name, sizeof name, "%s/%s/query/kernel", block, attn);
        const rs_vmoe_array *q = need(cv, name, 3, (int64_t[]){D, -1, -1}, err);
        if (!q)
            return err->code;
        if (i == 0)
            H = q->shape[1];
        if (q->shape[1] != H || q->shape[1] * q->shape[2] != D)
            return rs_error_set(err, RS_EFORMAT, "%s: %s: query kernel heads x head_dim is not hidden %" PRId64,
                                cv->prefix, block, D);
        int64_t Dh = D / H;
        float *qkv = new_buf(cv, (size_t)(3 * D * D)), *qkv_b = new_buf(cv, (size_t)(3 * D));
        if (!qkv || !qkv_b)
            return rs_error_set(err, RS_ENOMEM, "out of memory");
        static const char *const parts[] = {"query", "key", "value"};
        for (int j = 0; j < 3; j++) { /* kernel (D,H,Dh) = (in, out): rows j*D + h*Dh + e */
            snprintf(name, sizeof name, "%s/%s/%s/kernel", block, attn, parts[j]);
            const rs_vmoe_array *k = need(cv, name, 3, (int64_t[]){D, H, Dh}, err);
            snprintf(name, sizeof name, "%s/%s/%s/bias", block, attn, parts[j]);
            const rs_vmoe_array *b = k ? need(cv, name, 2, (int64_t[]){H, Dh}, err) : NULL;
            if (!b)
                return err->code;
            transpose(qkv + j * D * D, k->data, 1, D, D);
            memcpy(qkv_b + j * D, b->data, sizeof(float) * (size_t)D);
        }
        snprintf(ours, sizeof ours, "blocks.%d.attn.qkv.weight", i);
        emit(cv, ours, qkv, 2, 3 * D, D, 0, 0);
        snprintf(ours, sizeof ours, "blocks.%d.attn.qkv.bias", i);
        emit(cv, ours, qkv_b, 1, 3 * D, 0, 0, 0);
        snprintf(name, sizeof name, "%s/%s/out/kernel", block, attn);
        const rs_vmoe_array *ok = need(cv, name, 3, (int64_t[]){H, Dh, D}, err);
        snprintf(name, sizeof name, "%s/%s/out/bias", block, attn);
        const rs_vmoe_array *ob = ok ? need(cv, name, 1, (int64_t[]){D}, err) : NULL;
        if (!ob)
            return err->code;
        float *proj = new_buf(cv, (size_t)(D * D));
        if (!proj)
            return rs_error_set(err, RS_ENOMEM, "out of memory");
        transpose(proj, ok->data, 1, D, D);
        snprintf(ours, sizeof ours, "blocks.%d.attn.proj.weight", i);
        emit(cv, ours, proj, 2, D, D, 0, 0);
        snprintf(ours, sizeof ours, "blocks.%d.attn.proj.bias", i);
        emit(cv, ours, ob->data, 1, D, 0, 0, 0);

        snprintf(name, sizeof name, "%s/Moe/Router/dense/kernel", block);
        if (has(cv, name)) {
            const rs_vmoe_array *rk = need(cv, name, 2, (int64_t[]){D, E ? E : -1}, err);
            if (!rk)
                return err->code;
            E = rk->shape[1];
            snprintf(name, sizeof name, "%s/Moe/Router/dense/bias", block);
            bool rb = has(cv, name);
            if (num_moe > 0 && rb != router_bias)
                return rs_error_set(err, RS_EFORMAT, "%s: %s: router bias present in some MoE blocks only", cv->prefix,
                                    block);
            router_bias = rb;
            snprintf(name, sizeof name, "%s/Moe/Router/dense", block);
            snprintf(ours, sizeof ours, "blocks.%d.moe.router", i);
            if ((rc = dense(cv, name, ours, D, E, rb, err)))
                return rc;
            snprintf(name, sizeof name, "%s/Moe/Mlp/Dense_0/kernel", block);
            const rs_vmoe_array *k0 = need(cv, name, 3, (int64_t[]){E, D, M ? M : -1}, err);
            if (!k0)
                return err->code;
            M = k0->shape[2];
            snprintf(name, sizeof name, "%s/Moe/Mlp/Dense_0/bias", block);
            const rs_vmoe_array *b0 = need(cv, name, 2, (int64_t[]){E, M}, err);
            snprintf(name, sizeof name, "%s/Moe/Mlp/Dense_1/kernel", block);
            const rs_vmoe_array *k1 = b0 ? need(cv, name, 3, (int64_t[]){E, M, D}, err) : NULL;
            snprintf(name, sizeof name, "%s/Moe/Mlp/Dense_1/bias", block);
            const rs_vmoe_array *b1 = k1 ? need(cv, name, 2, (int64_t[]){E, D}, err) : NULL;
            if (!b1)
                return err->code;
            float *w0 = new_buf(cv, (size_t)(E * M * D)), *w1 = new_buf(cv, (size_t)(E * D * M));
            if (!w0 || !w1)
                return rs_error_set(err, RS_ENOMEM, "out of memory");
            transpose(w0, k0->data, E, D, M); /* (E,D,M) -> (E,M,D) */
            transpose(w1, k1->data, E, M, D); /* (E,M,D) -> (E,D,M) */
            snprintf(ours, sizeof ours, "blocks.%d.moe.experts.fc1.weight", i);
            emit(cv, ours, w0, 3, E, M, D, 0);
            snprintf(ours, sizeof ours, "blocks.%d.moe.experts.fc1.bias", i);
            emit(cv, ours, b0->data, 2, E, M, 0, 0);
            snprintf(ours, sizeof ours, "blocks.%d.moe.experts.fc2.weight", i);
            emit(cv, ours, w1, 3, E, D, M, 0);
            snprintf(ours, sizeof ours, "blocks.%d.moe.experts.fc2.bias", i);
            emit(cv, ours, b1->data, 2, E, D, 0, 0);
            moe[num_moe++] = i;
        } else {
            const char *mlp = first_present(cv, block, mlp_names, "Dense_0/kernel");
            if (!mlp)
                return rs_error_set(err, RS_EFORMAT, "%s: %s has neither Mlp (MlpBlock_3) nor Moe", cv->prefix, block);
            snprintf(name, sizeof name, "%s/%s/Dense_0/kernel", block, mlp);
            const rs_vmoe_array *k0 = need(cv, name, 2, (int64_t[]){D, M ? M : -1}, err);
            if (!k0)
                return err->code;
            M = k0->shape[1];
            snprintf(name, sizeof name, "%s/%s/Dense_0", block, mlp);
            snprintf(ours, sizeof ours, "blocks.%d.mlp.fc1", i);
            if ((rc = dense(cv, name, ours, D, M, true, err)))
                return rc;
            snprintf(name, sizeof name, "%s/%s/Dense_1", block, mlp);
            snprintf(ours, sizeof ours, "blocks.%d.mlp.fc2", i);
            if ((rc = dense(cv, name, ours, M, D, true, err)))
                return rc;
        }
    }
    if (num_moe == 0)
        return rs_error_set(err, RS_EFORMAT, "%s: no block has a Moe layer (a dense ViT is not a V-MoE)", cv->prefix);
    int rc = layer_norm(cv, "Encoder/encoder_norm", "norm", D, err);
    if (rc)
        return rc;
    bool representation = has(cv, "pre_logits/kernel");
    if (representation) {
        const rs_vmoe_array *pk = need(cv, "pre_logits/kernel", 2, (int64_t[]){D, -1}, err);
        if (!pk)
            return err->code;
        if (pk->shape[1] != D)
            return rs_error_set(err, RS_EFORMAT, "%s: pre_logits maps %" PRId64 " to %" PRId64 "; only a square "
                                "representation layer is supported", cv->prefix, D, pk->shape[1]);
        if ((rc = dense(cv, "pre_logits", "pre_logits", D, D, true, err)))
            return rc;
    }
    const rs_vmoe_array *hk = need(cv, "head/kernel", 2, (int64_t[]){D, -1}, err);
    if (!hk)
        return err->code;
    int64_t K = hk->shape[1];
    if ((rc = dense(cv, "head", "head", D, K, true, err)))
        return rc;

    int top_k = opt->top_k > 0 ? opt->top_k : pre ? pre->top_k : 0;
    if (top_k == 0)
        return rs_error_set(err, RS_EINVAL, "%s: top_k cannot be read from the tensors: pass --top-k K or --config "
                            "PRESET", cv->prefix);
    if (top_k > E)
        return rs_error_set(err, RS_EINVAL, "%s: top_k %d but the checkpoint has %" PRId64 " experts", cv->prefix,
                            top_k, E);
    int gelu = opt->gelu >= 0 ? opt->gelu : RS_GELU_TANH;

    json_t *cfg = json_object(), *ml = json_array(), *mean = json_array(), *std = json_array();
    for (int i = 0; i < num_moe; i++)
        json_array_append_new(ml, json_integer(moe[i]));
    for (int64_t c = 0; c < C; c++) {
        json_array_append_new(mean, json_real(0.5));
        json_array_append_new(std, json_real(0.5));
    }
    json_object_set_new(cfg, "image_size", json_pack("[I,I]", (json_int_t)image, (json_int_t)image));
    json_object_set_new(cfg, "channels", json_integer(C));
    json_object_set_new(cfg, "patch_size", json_integer(P));
    json_object_set_new(cfg, "hidden", json_integer(D));
    json_object_set_new(cfg, "depth", json_integer(depth));
    json_object_set_new(cfg, "heads", json_integer(H));
    json_object_set_new(cfg, "mlp_dim", json_integer(M));
    json_object_set_new(cfg, "num_classes", json_integer(K));
    json_object_set_new(cfg, "moe_layers", ml);
    json_object_set_new(cfg, "num_experts", json_integer(E));
    json_object_set_new(cfg, "top_k", json_integer(top_k));
    json_object_set_new(cfg, "router_bias", json_boolean(router_bias));
    json_object_set_new(cfg, "classifier", json_string(token ? "token" : "gap"));
    json_object_set_new(cfg, "layer_norm_eps", json_real(1e-6));
    json_object_set_new(cfg, "gelu", json_string(gelu == RS_GELU_ERF ? "erf" : "tanh"));
    json_object_set_new(cfg, "mean", mean);
    json_object_set_new(cfg, "std", std);
    json_object_set_new(cfg, "representation", json_boolean(representation));
    /* What vmoe's config for this model evaluates with (PRESETS); applied only on request
     * (`--dispatch model`). */
    if (pre)
        json_object_set_new(cfg, "dispatch", json_pack("{s:f, s:i, s:b, s:b}", "capacity_factor", pre->capacity_factor,
                                                       "group_images", pre->group_images, "bpr", pre->bpr, "bf16",
                                                       pre->bf16));
    char *cfg_text = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(cfg);
    if (!cfg_text)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    const char *meta[] = {"format", "routerscope-vmoe", "config", cfg_text, "source", cv->prefix};
    rc = rs_safetensors_write_f32(out, cv->t, cv->n, meta, 3, err);
    free(cfg_text);
    if (rc)
        return rc;
    rs_model *m;
    if ((rc = rs_model_open(out, &m, err))) {
        remove(out); /* never leave a file that does not load */
        return rc;
    }
    rs_model_close(m);
    if (summary && summary_size) {
        int used = snprintf(summary, summary_size, "%" PRId64 "x%" PRId64 "x%" PRId64 " P%" PRId64 " D%" PRId64
                            " L%d H%" PRId64 " M%" PRId64 " K%" PRId64 " E%" PRId64 " k%d moe[", image, image, C, P, D,
                            depth, H, M, K, E, top_k);
        for (int i = 0; i < num_moe && used > 0 && (size_t)used < summary_size; i++)
            used += snprintf(summary + used, summary_size - (size_t)used, "%s%d", i ? "," : "", moe[i]);
        if (used > 0 && (size_t)used < summary_size)
            snprintf(summary + used, summary_size - (size_t)used, "] %s gelu=%s%s", token ? "token" : "gap",
                     gelu == RS_GELU_ERF ? "erf" : "tanh", representation ? " pre_logits" : "");
    }
    return 0;
}

int rs_vmoe_convert(const char *prefix, const char *out, const rs_vmoe_options *opt, char *summary,
                    size_t summary_size, rs_error *err)
{
    rs_error local;
    if (!err)
        err = &local;
    rs_vmoe_ckpt *ck;
    int rc = rs_vmoe_ckpt_read(prefix, &ck, err);
    if (rc)
        return rc;
    conv *cv = calloc(1, sizeof *cv);
    if (!cv) {
        rs_vmoe_ckpt_free(ck);
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    cv->ck = ck;
    cv->prefix = prefix;
    rc = convert(cv, opt, out, summary, summary_size, err);
    for (int i = 0; i < cv->nowned; i++)
        free(cv->owned[i]);
    free(cv);
    rs_vmoe_ckpt_free(ck);
    return rc;
}
