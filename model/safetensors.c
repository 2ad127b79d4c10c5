#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "half.h"

/* A header larger than this is not a model header but a corrupt length field; refusing
 * it early avoids handing a gigabyte of garbage to the JSON parser. */
#define RS_ST_MAX_HEADER (100u << 20)

struct rs_safetensors {
    char *path;               /* owned */
    const unsigned char *map; /* owned mapping of the whole file */
    size_t size;
    json_t *header;           /* owned; tensor names and metadata borrow from it */
    json_t *metadata;         /* borrowed from header, may be NULL */
    rs_st_tensor *tensors;    /* owned, sorted by name */
    int count;
};

const char *rs_dtype_name(rs_dtype dtype)
{
    switch (dtype) {
    case RS_DTYPE_F32: return "F32";
    case RS_DTYPE_F16: return "F16";
    case RS_DTYPE_BF16: return "BF16";
    }
    return "?";
}

size_t rs_dtype_size(rs_dtype dtype)
{
    return dtype == RS_DTYPE_F32 ? 4 : 2;
}

static int parse_dtype(const char *s, rs_dtype *out)
{
    if (!strcmp(s, "F32")) *out = RS_DTYPE_F32;
    else if (!strcmp(s, "F16")) *out = RS_DTYPE_F16;
    else if (!strcmp(s, "BF16")) *out = RS_DTYPE_BF16;
    else return -1;
    return 0;
}

void rs_dtype_to_f32(rs_dtype dtype, const void *src, float *dst, size_t n)
{
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        if (dtype == RS_DTYPE_F32) {
            memcpy(&dst[i], p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if (dtype == RS_DTYPE_F16) {
                dst[i] = rs_half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&dst[i], &bits, 4);
            }
        }
    }
}

char *rs_shape_str(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%lld" : "%lld",
                                 (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const rs_st_tensor *)a)->name, ((const rs_st_tensor *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const rs_st_tensor *x = *(const rs_st_tensor *const *)a;
    const rs_st_tensor *y = *(const rs_st_tensor *const *)b;
    const unsigned char *px = x->data, *py = y->data;
    return px < py ? -1 : px > py;
}

/* Reads a JSON integer that must be >= 0; -1 when it is not. */
static int64_t json_nonneg(const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return (int64_t)json_integer_value(v);
}

static int parse_tensor(rs_safetensors *st, const char *name, json_t *desc,
                        const unsigned char *data, size_t data_size, rs_st_tensor *t,
                        rs_error *err)
{
    const char *path = st->path;
    t->name = name;
    if (!json_is_object(desc))
        return rs_error_set(err, RS_EFORMAT, "%s: tensor %s: description is not an object",
                            path, name);
    const char *dtype = json_string_value(json_object_get(desc, "dtype"));
    if (!dtype)
        return rs_error_set(err, RS_EFORMAT, "%s: tensor %s: missing \"dtype\"", path, name);
    if (parse_dtype(dtype, &t->dtype))
        return rs_error_set(err, RS_EFORMAT,
                            "%s: tensor %s: dtype '%s' is not supported (want F32, F16 or BF16)",
                            path, name, dtype);
    json_t *shape = json_object_get(desc, "shape");
    if (!json_is_array(shape) || json_array_size(shape) > RS_ST_MAX_DIMS)
        return rs_error_set(err, RS_EFORMAT,
                            "%s: tensor %s: \"shape\" must be an array of at most %d sizes",
                            path, name, RS_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        int64_t d = json_nonneg(json_array_get(shape, (size_t)i));
        /* 2^40 elements is far beyond any model and keeps numel * 4 from overflowing. */
        if (d < 0 || (d > 0 && t->numel > ((int64_t)1 << 40) / d))
            return rs_error_set(err, RS_EFORMAT, "%s: tensor %s: bad shape entry %d", path,
                                name, i);
        t->shape[i] = d;
        t->numel *= d;
    }
    json_t *offs = json_object_get(desc, "data_offsets");
    int64_t begin = json_nonneg(json_array_get(offs, 0));
    int64_t end = json_nonneg(json_array_get(offs, 1));
    if (!json_is_array(offs) || json_array_size(offs) != 2 || begin < 0 || end < begin)
        return rs_error_set(err, RS_EFORMAT,
                            "%s: tensor %s: \"data_offsets\" must be [begin, end] with begin <= end",
                            path, name);
    if ((uint64_t)end > data_size)
        return rs_error_set(err, RS_EFORMAT,
                            "%s: tensor %s: data_offsets [%lld,%lld] outside the data section (%zu bytes)",
                            path, name, (long long)begin, (long long)end, data_size);
    t->nbytes = (size_t)(end - begin);
    if ((uint64_t)t->numel * rs_dtype_size(t->dtype) != t->nbytes) {
        char sh[96];
        return rs_error_set(err, RS_EFORMAT,
                            "%s: tensor %s: shape %s of %s needs %lld bytes but data_offsets span %zu",
                            path, name, rs_shape_str(t->shape, t->ndim, sh, sizeof sh), dtype,
                            (long long)(t->numel * (int64_t)rs_dtype_size(t->dtype)), t->nbytes);
    }
    t->data = data + begin;
    return 0;
}

static int check_overlaps(rs_safetensors *st, rs_error *err)
{
    if (st->count < 2)
        return 0;
    const rs_st_tensor **order = malloc(sizeof *order * (size_t)st->count);
    if (!order)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", st->path);
    for (int i = 0; i < st->count; i++)
        order[i] = &st->tensors[i];
    qsort(order, (size_t)st->count, sizeof *order, cmp_tensor_offset);
    int rc = 0;
    for (int i = 1; i < st->count; i++) {
        const unsigned char *prev_end = (const unsigned char *)order[i - 1]->data + order[i - 1]->nbytes;
        if ((const unsigned char *)order[i]->data < prev_end && order[i]->nbytes > 0) {
            rc = rs_error_set(err, RS_EFORMAT, "%s: tensors %s and %s overlap in the data section",
                              st->path, order[i - 1]->name, order[i]->name);
            break;
        }
    }
    free(order);
    return rc;
}

static int parse_header(rs_safetensors *st, rs_error *err)
{
    const char *path = st->path;
    if (st->size < 8)
        return rs_error_set(err, RS_EFORMAT, "%s: file is %zu bytes, too short for a safetensors header",
                            path, st->size);
    /* A safetensors file is an 8-byte length, then a JSON object: anything else (a text
       file, a database, an image) is named as such rather than by a nonsense length. */
    size_t k = 8;
    while (k < st->size && k < 72 && strchr(" \t\r\n", st->map[k]) && st->map[k])
        k++;
    if (k >= st->size || st->map[k] != '{') {
        char start[17];
        size_t n = st->size < 16 ? st->size : 16;
        for (size_t i = 0; i < n; i++)
            start[i] = st->map[i] >= 0x20 && st->map[i] < 0x7f ? (char)st->map[i] : '.';
        start[n] = 0;
        return rs_error_set(err, RS_EFORMAT,
                            "%s: not a safetensors file (no JSON header after the 8-byte length; it starts "
                            "with \"%s\")", path, start);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | st->map[i];
    if (hlen > st->size - 8)
        return rs_error_set(err, RS_EFORMAT,
                            "%s: header length %llu exceeds the file (%zu bytes): truncated or not safetensors",
                            path, (unsigned long long)hlen, st->size);
    if (hlen > RS_ST_MAX_HEADER || hlen < 2)
        return rs_error_set(err, RS_EFORMAT, "%s: implausible header length %llu", path,
                            (unsigned long long)hlen);
    json_error_t jerr;
    st->header = json_loadb((const char *)st->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!st->header)
        return rs_error_set(err, RS_EFORMAT, "%s: header is not valid JSON: %s (at byte %d)", path,
                            jerr.text, jerr.position);
    if (!json_is_object(st->header))
        return rs_error_set(err, RS_EFORMAT, "%s: header is not a JSON object", path);

    const unsigned char *data = st->map + 8 + hlen;
    size_t data_size = st->size - 8 - (size_t)hlen;
    size_t n = json_object_size(st->header);
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);

    const char *key;
    json_t *value;
    json_object_foreach(st->header, key, value) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(value))
                return rs_error_set(err, RS_EFORMAT, "%s: __metadata__ is not an object", path);
            const char *mk;
            json_t *mv;
            json_object_foreach(value, mk, mv) {
                if (!json_is_string(mv))
                    return rs_error_set(err, RS_EFORMAT,
                                        "%s: __metadata__ value \"%s\" is not a string", path, mk);
            }
            st->metadata = value;
            continue;
        }
        int rc = parse_tensor(st, key, value, data, data_size, &st->tensors[st->count], err);
        if (rc)
            return rc;
        st->count++;
    }
    qsort(st->tensors, (size_t)st->count, sizeof *st->tensors, cmp_tensor_name);
    return check_overlaps(st, err);
}

int rs_safetensors_open(const char *path, rs_safetensors **out, rs_error *err)
{
    *out = NULL;
    rs_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        rs_safetensors_close(st);
        return rs_error_set(err, RS_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = rs_error_set(err, RS_EIO, "%s: not a regular file", path);
    } else {
        st->size = (size_t)sb.st_size;
        if (st->size > 0) {
            void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (m == MAP_FAILED)
                rc = rs_error_set(err, RS_EIO, "%s: cannot map: %s", path, strerror(errno));
            else
                st->map = m;
        }
    }
    close(fd);
    if (!rc)
        rc = parse_header(st, err);
    if (rc) {
        rs_safetensors_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void rs_safetensors_close(rs_safetensors *st)
{
    if (!st)
        return;
    if (st->map)
        munmap((void *)st->map, st->size);
    json_decref(st->header);
    free(st->tensors);
    free(st->path);
    free(st);
}

int rs_safetensors_count(const rs_safetensors *st) { return st->count; }

const rs_st_tensor *rs_safetensors_at(const rs_safetensors *st, int index)
{
    return index >= 0 && index < st->count ? &st->tensors[index] : NULL;
}

const rs_st_tensor *rs_safetensors_find(const rs_safetensors *st, const char *name)
{
    rs_st_tensor key = {.name = name};
    return bsearch(&key, st->tensors, (size_t)st->count, sizeof key, cmp_tensor_name);
}

const char *rs_safetensors_metadata(const rs_safetensors *st, const char *key)
{
    return st->metadata ? json_string_value(json_object_get(st->metadata, key)) : NULL;
}

const char *rs_safetensors_path(const rs_safetensors *st) { return st->path; }

size_t rs_safetensors_file_size(const rs_safetensors *st) { return st->size; }

void rs_safetensors_sha256(const rs_safetensors *st, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, st->size, st->map);
    sha256_digest(&ctx, sizeof digest, digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}
