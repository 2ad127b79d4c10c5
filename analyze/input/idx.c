#include "idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Sixty thousand 28x28 images are 47 MB; this bound only stops a corrupt header from
 * asking for terabytes. */
#define RS_IDX_MAX_BYTES (1ull << 32)

/* The error of a gzread that returned R (< 0: an error, 0: the end) after GOT of N bytes. */
static int short_read(gzFile gz, const char *path, const char *what, size_t n, size_t got, int r, rs_error *err)
{
    if (r < 0) {
        int zerr;
        const char *msg = gzerror(gz, &zerr);
        return rs_error_set(err, RS_EIO, "%s: cannot read %s: %s", path, what, zerr == Z_ERRNO ? strerror(errno) : msg);
    }
    return rs_error_set(err, RS_EFORMAT, "%s: truncated: %s should be %zu bytes, only %zu present", path, what, n,
                        got);
}

static int read_exact(gzFile gz, const char *path, void *buf, size_t n, const char *what,
                      rs_error *err)
{
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(gz, (char *)buf + got, chunk);
        if (r <= 0)
            return short_read(gz, path, what, n, got, r, err);
        got += (size_t)r;
    }
    return 0;
}

/* Reads N bytes into a new buffer (*OUT, caller frees) that grows as the data arrives, from
 * 1 MB by doubling: a header announcing gigabytes costs memory only as far as the file
 * really holds them (fuzz_source found a 24-byte file asking for 2.8 GB). */
static int read_alloc(gzFile gz, const char *path, size_t n, const char *what, uint8_t **out, rs_error *err)
{
    size_t cap = 0, got = 0;
    uint8_t *buf = NULL;
    while (got < n) {
        if (got == cap) {
            size_t grown = cap == 0 ? (n < (1u << 20) ? n : (1u << 20)) : cap > n / 2 ? n : 2 * cap;
            uint8_t *bigger = realloc(buf, grown);
            if (!bigger) {
                free(buf);
                return rs_error_set(err, RS_ENOMEM, "%s: out of memory for %s (%zu bytes)", path, what, n);
            }
            buf = bigger;
            cap = grown;
        }
        unsigned chunk = cap - got > (1u << 30) ? (1u << 30) : (unsigned)(cap - got);
        int r = gzread(gz, buf + got, chunk);
        if (r <= 0) {
            free(buf);
            return short_read(gz, path, what, n, got, r, err);
        }
        got += (size_t)r;
    }
    *out = buf;
    return 0;
}

/* Opens PATH and reads the magic and NDIM sizes; checks the magic is WANT. */
static int open_header(const char *path, uint32_t want, int ndim, uint32_t *dims, gzFile *out,
                       rs_error *err)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return rs_error_set(err, RS_EIO, "%s: cannot open: %s", path, errno ? strerror(errno) : "zlib error");
    unsigned char head[16];
    /* The magic first, so that a short file of the wrong kind is named for what it is. */
    int rc = read_exact(gz, path, head, 4, "the header", err);
    if (!rc) {
        uint32_t magic = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
        if (magic != want)
            rc = rs_error_set(err, RS_EFORMAT, "%s: magic 0x%08x is not an IDX %s file (want 0x%08x)", path,
                              magic, want == 0x803 ? "image" : "label", want);
        if (!rc)
            rc = read_exact(gz, path, head + 4, 4 * (size_t)ndim, "the header's sizes", err);
        for (int i = 0; !rc && i < ndim; i++) {
            const unsigned char *p = head + 4 + 4 * i;
            dims[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        }
    }
    if (rc) {
        gzclose(gz);
        return rc;
    }
    *out = gz;
    return 0;
}

/* After the payload the file must end: trailing bytes mean the header's count is wrong. */
static int expect_end(gzFile gz, const char *path, rs_error *err)
{
    unsigned char extra;
    if (gzread(gz, &extra, 1) > 0)
        return rs_error_set(err, RS_EFORMAT, "%s: more data than the header's count announces", path);
    return 0;
}

int rs_idx_read_images(const char *path, rs_idx_images *out, rs_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t dims[3];
    gzFile gz;
    int rc = open_header(path, 0x803, 3, dims, &gz, err);
    if (rc)
        return rc;
    unsigned long long bytes = (unsigned long long)dims[0] * dims[1] * dims[2];
    if (dims[0] == 0 || dims[1] == 0 || dims[2] == 0 || dims[0] > INT32_MAX || dims[1] > 65535 ||
        dims[2] > 65535 || bytes > RS_IDX_MAX_BYTES) {
        rc = rs_error_set(err, RS_EFORMAT, "%s: implausible image count or size %ux%ux%u", path, dims[0],
                          dims[1], dims[2]);
    } else if (!(rc = read_alloc(gz, path, (size_t)bytes, "the pixels", &out->pixels, err))) {
        rc = expect_end(gz, path, err);
    }
    gzclose(gz);
    if (rc) {
        rs_idx_images_free(out);
        return rc;
    }
    out->count = (int)dims[0];
    out->rows = (int)dims[1];
    out->cols = (int)dims[2];
    return 0;
}

int rs_idx_read_labels(const char *path, uint8_t **labels, int *count, rs_error *err)
{
    *labels = NULL;
    *count = 0;
    uint32_t n;
    gzFile gz;
    int rc = open_header(path, 0x801, 1, &n, &gz, err);
    if (rc)
        return rc;
    uint8_t *buf = NULL;
    if (n == 0 || n > INT32_MAX)
        rc = rs_error_set(err, RS_EFORMAT, "%s: implausible label count %u", path, n);
    else if (!(rc = read_alloc(gz, path, n, "the labels", &buf, err)))
        rc = expect_end(gz, path, err);
    gzclose(gz);
    if (rc) {
        free(buf);
        return rc;
    }
    *labels = buf;
    *count = (int)n;
    return 0;
}

void rs_idx_images_free(rs_idx_images *images)
{
    free(images->pixels);
    images->pixels = NULL;
}
