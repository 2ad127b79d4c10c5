#include "gemm.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#ifdef RS_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>
#endif

#ifdef RS_HAVE_DNNL
/* Everything that decides a primitive: two calls with equal keys share one. */
typedef struct prim_key {
    int trans_a, trans_b, bf16;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
} prim_key;

/* A cached primitive and its three memory objects, whose data handles each call sets. */
typedef struct prim_entry {
    prim_key key;
    dnnl_primitive_t prim; /* NULL: an empty slot */
    dnnl_memory_t a, b, c;
} prim_entry;
#endif

struct rs_gemm {
    rs_gemm_backend backend;
    rs_precision precision;
    rs_error status;          /* code 0 until a call fails */
#ifdef RS_HAVE_DNNL
    dnnl_engine_t engine;     /* owned */
    dnnl_stream_t stream;     /* owned, in order */
    prim_entry *table;        /* open addressing, cap a power of two, owned */
    size_t cap, count;
    uint16_t *abuf;           /* bf16 copy of A, abuf_len values, owned */
    size_t abuf_len;
#endif
};

bool rs_gemm_available(rs_gemm_backend backend)
{
#ifdef RS_HAVE_DNNL
    return backend == RS_GEMM_OPENBLAS || backend == RS_GEMM_ONEDNN;
#else
    return backend == RS_GEMM_OPENBLAS;
#endif
}

const char *rs_gemm_backend_name(rs_gemm_backend backend)
{
    return backend == RS_GEMM_ONEDNN ? "onednn" : "openblas";
}

const char *rs_precision_name(rs_precision precision)
{
    return precision == RS_PRECISION_BF16 ? "bf16" : "f32";
}

int rs_gemm_backend_parse(const char *text, rs_gemm_backend *out, rs_error *err)
{
    if (!strcmp(text, "openblas"))
        *out = RS_GEMM_OPENBLAS;
    else if (!strcmp(text, "onednn"))
        *out = RS_GEMM_ONEDNN;
    else
        return rs_error_set(err, RS_EINVAL, "gemm '%s': want openblas or onednn", text);
    return 0;
}

int rs_precision_parse(const char *text, rs_precision *out, rs_error *err)
{
    if (!strcmp(text, "f32"))
        *out = RS_PRECISION_F32;
    else if (!strcmp(text, "bf16"))
        *out = RS_PRECISION_BF16;
    else
        return rs_error_set(err, RS_EINVAL, "precision '%s': want f32 or bf16", text);
    return 0;
}

int rs_gemm_check(rs_gemm_backend backend, rs_precision precision, rs_error *err)
{
    if (!rs_gemm_available(backend))
        return rs_error_set(err, RS_EINVAL, "gemm %s: this build has no oneDNN (install libdnnl-dev and rebuild)",
                            rs_gemm_backend_name(backend));
    if (precision == RS_PRECISION_BF16 && backend != RS_GEMM_ONEDNN)
        return rs_error_set(err, RS_EINVAL, "precision bf16 needs --gemm onednn");
    __builtin_cpu_init();
    if (precision == RS_PRECISION_BF16 && !__builtin_cpu_supports("avx512bf16"))
        return rs_error_set(err, RS_EINVAL, "precision bf16: this CPU lacks the avx512_bf16 instruction set");
    return 0;
}

rs_precision rs_gemm_precision(const rs_gemm *g)
{
    return g->precision;
}

int rs_gemm_status(const rs_gemm *g, rs_error *err)
{
    if (g->status.code && err)
        *err = g->status;
    return g->status.code;
}

#ifdef RS_HAVE_DNNL
/* The first failure sticks; later calls of a failed state do nothing. */
static void fail(rs_gemm *g, int code, const char *what, dnnl_status_t st)
{
    if (!g->status.code)
        rs_error_set(&g->status, code, "onednn: %s failed (status %d)", what, (int)st);
}

/* FNV-1a over the key's bytes (the key has no padding: ints and floats). */
static size_t key_hash(const prim_key *key)
{
    const unsigned char *p = (const unsigned char *)key;
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < sizeof *key; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return (size_t)h;
}

static prim_entry *slot_for(prim_entry *table, size_t cap, const prim_key *key)
{
    size_t i = key_hash(key) & (cap - 1);
    while (table[i].prim && memcmp(&table[i].key, key, sizeof *key))
        i = (i + 1) & (cap - 1);
    return &table[i];
}

/* Doubles the table (keeps it at most half full). */
static int grow(rs_gemm *g)
{
    size_t cap = g->cap ? 2 * g->cap : 64;
    prim_entry *t = calloc(cap, sizeof *t);
    if (!t)
        return RS_ENOMEM;
    for (size_t i = 0; i < g->cap; i++)
        if (g->table[i].prim)
            *slot_for(t, cap, &g->table[i].key) = g->table[i];
    free(g->table);
    g->table = t;
    g->cap = cap;
    return 0;
}

/* A (rows, cols) matrix at leading dimension LD, or its transpose when TRANS. */
static dnnl_status_t matrix_md(dnnl_memory_desc_t *md, int rows, int cols, int ld, bool trans, dnnl_data_type_t dt)
{
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

/* Creates KEY's primitive and memory objects into E. */
static dnnl_status_t create_entry(rs_gemm *g, const prim_key *key, prim_entry *e)
{
    dnnl_data_type_t dt = key->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t a, b, c;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st;
    if ((st = matrix_md(&a, key->m, key->k, key->lda, key->trans_a, dt)) ||
        (st = matrix_md(&b, key->k, key->n, key->ldb, key->trans_b, dt)) ||
        (st = matrix_md(&c, key->m, key->n, key->ldc, false, dnnl_f32)) ||
        (st = dnnl_matmul_desc_init(&desc, &a, &b, NULL, &c)) || (st = dnnl_primitive_attr_create(&attr)) ||
        (key->alpha != 1.0f && (st = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key->alpha))))
        goto out;
    if (key->beta != 0.0f && ((st = dnnl_post_ops_create(&ops)) || (st = dnnl_post_ops_append_sum(ops, key->beta)) ||
                              (st = dnnl_primitive_attr_set_post_ops(attr, ops))))
        goto out;
    if ((st = dnnl_primitive_desc_create(&pd, &desc, attr, g->engine, NULL)) ||
        (st = dnnl_memory_create(&e->a, &a, g->engine, DNNL_MEMORY_NONE)) ||
        (st = dnnl_memory_create(&e->b, &b, g->engine, DNNL_MEMORY_NONE)) ||
        (st = dnnl_memory_create(&e->c, &c, g->engine, DNNL_MEMORY_NONE)) ||
        (st = dnnl_primitive_create(&e->prim, pd))) {
        dnnl_memory_destroy(e->a);
        dnnl_memory_destroy(e->b);
        dnnl_memory_destroy(e->c);
        memset(e, 0, sizeof *e);
    } else {
        e->key = *key;
    }
out:
    dnnl_primitive_desc_destroy(pd);
    dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* The largest power of two <= LEFT (0 when none is left): products run in such row
 * blocks, so that a shape needs at most one primitive per bit of its row count instead of
 * one per row count (expert products see a new one in almost every group). */
static int row_block(int left)
{
    int rows = 1;
    if (left <= 0)
        return 0;
    while (rows <= left / 2)
        rows *= 2;
    return rows;
}

/* Runs KEY on A, B, C, creating its primitive on first use. */
static void run_dnnl(rs_gemm *g, const prim_key *key, const void *a, const void *b, float *c)
{
    if (g->status.code)
        return;
    /* oneDNN parallelises over OpenMP's thread count of the calling thread: one thread,
     * as cblas_sgemm here, so that the split never depends on where the call runs. */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    if (2 * (g->count + 1) > g->cap && grow(g)) {
        fail(g, RS_ENOMEM, "growing the primitive cache", dnnl_out_of_memory);
        goto out;
    }
    prim_entry *e = slot_for(g->table, g->cap, key);
    dnnl_status_t st;
    if (!e->prim) {
        if ((st = create_entry(g, key, e))) {
            fail(g, st == dnnl_out_of_memory ? RS_ENOMEM : RS_EINVAL, "creating a matmul primitive", st);
            goto out;
        }
        g->count++;
    }
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    if ((st = dnnl_memory_set_data_handle(e->a, (void *)a)) || (st = dnnl_memory_set_data_handle(e->b, (void *)b)) ||
        (st = dnnl_memory_set_data_handle(e->c, c)) || (st = dnnl_primitive_execute(e->prim, g->stream, 3, args)) ||
        (st = dnnl_stream_wait(g->stream)))
        fail(g, RS_EINVAL, "executing a matmul", st);
out:
    omp_set_num_threads(threads);
}
#endif

void rs_gemm_f32(rs_gemm *g, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
#ifdef RS_HAVE_DNNL
    if (g->backend == RS_GEMM_ONEDNN) {
        /* Rows in power-of-two blocks (gemm.h): a row's value does not depend on the block. */
        for (int row = 0, rows; (rows = row_block(m - row)) > 0; row += rows) {
            prim_key key = {trans_a, trans_b, 0, rows, n, k, lda, ldb, ldc, alpha, beta};
            run_dnnl(g, &key, a + (trans_a ? (size_t)row : (size_t)row * lda), b, c + (size_t)row * ldc);
        }
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

void rs_gemm_bf16(rs_gemm *g, int m, int n, int k, const float *a, int lda, const uint16_t *w, float beta, float *c,
                  int ldc)
{
    if (m <= 0 || n <= 0)
        return;
#ifdef RS_HAVE_DNNL
    if (g->status.code)
        return;
    size_t len = (size_t)m * k;
    if (len > g->abuf_len) {
        uint16_t *grown = realloc(g->abuf, sizeof *grown * len);
        if (!grown) {
            fail(g, RS_ENOMEM, "allocating the bf16 copy of A", dnnl_out_of_memory);
            return;
        }
        g->abuf = grown;
        g->abuf_len = len;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++)
            g->abuf[(size_t)i * k + j] = rs_bf16_round(a[(size_t)i * lda + j]);
    for (int row = 0, rows; (rows = row_block(m - row)) > 0; row += rows) {
        prim_key key = {0, 1, 1, rows, n, k, k, k, ldc, 1.0f, beta};
        run_dnnl(g, &key, g->abuf + (size_t)row * k, w, c + (size_t)row * ldc);
    }
#else
    (void)k, (void)a, (void)lda, (void)w, (void)beta, (void)c, (void)ldc;
    if (!g->status.code)
        rs_error_set(&g->status, RS_EINVAL, "precision bf16: this build has no oneDNN");
#endif
}

int rs_gemm_create(rs_gemm_backend backend, rs_precision precision, rs_gemm **out, rs_error *err)
{
    *out = NULL;
    int rc = rs_gemm_check(backend, precision, err);
    if (rc)
        return rc;
    rs_gemm *g = calloc(1, sizeof *g);
    if (!g)
        return rs_error_set(err, RS_ENOMEM, "gemm: out of memory");
    g->backend = backend;
    g->precision = precision;
#ifdef RS_HAVE_DNNL
    if (backend == RS_GEMM_ONEDNN) {
        /* AMX's bf16 kernels block small m differently from large (gemm.h): cap the ISA.
         * It fails once oneDNN has dispatched; the cap set by the first call then holds. */
        dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx512_core_bf16);
        dnnl_status_t st = dnnl_engine_create(&g->engine, dnnl_cpu, 0);
        if (!st)
            st = dnnl_stream_create(&g->stream, g->engine, dnnl_stream_in_order);
        if (st) {
            rs_gemm_free(g);
            return rs_error_set(err, RS_EINVAL, "onednn: creating the CPU engine failed (status %d)", (int)st);
        }
    }
#endif
    *out = g;
    return 0;
}

void rs_gemm_free(rs_gemm *g)
{
    if (!g)
        return;
#ifdef RS_HAVE_DNNL
    for (size_t i = 0; i < g->cap; i++) {
        prim_entry *e = &g->table[i];
        if (!e->prim)
            continue;
        dnnl_primitive_destroy(e->prim);
        dnnl_memory_destroy(e->a);
        dnnl_memory_destroy(e->b);
        dnnl_memory_destroy(e->c);
    }
    free(g->table);
    free(g->abuf);
    if (g->stream)
        dnnl_stream_destroy(g->stream);
    if (g->engine)
        dnnl_engine_destroy(g->engine);
#endif
    free(g);
}
