#include "gemm.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#ifdef RS_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>
#endif

#ifdef RS_HAVE_DNNL
/* Everything that decides a primitive: two calls with equal keys share one. PACKED: B is
 * a weight, handed over in the layout the primitive chose (weights_layout). */
typedef struct prim_key {
    int trans_a, trans_b, bf16, packed;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
} prim_key;

/* A cached primitive and its memory objects, whose data handles each call sets. A packed
 * entry has no B object (the packed copy's own is used) and the index of its weights
 * layout in rs_gemm.layouts; others have layout -1. */
typedef struct prim_entry {
    prim_key key;
    dnnl_primitive_t prim; /* NULL: an empty slot */
    dnnl_memory_t a, b, c;
    int layout;
} prim_entry;

/* One packed copy of a weight: which weight (its address and plain layout) in which of
 * the layouts primitives chose. */
typedef struct pack_key {
    const void *w;
    int n, k, ldb, trans_b, bf16, layout;
} pack_key;
_Static_assert(sizeof(pack_key) == sizeof(void *) + 6 * sizeof(int), "pack_key is hashed as bytes: no padding");

typedef struct pack_entry {
    pack_key key;
    dnnl_memory_t mem; /* owns the packed copy; NULL: an empty slot */
} pack_entry;
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
    dnnl_memory_desc_t *layouts; /* the distinct weights layouts primitives chose, owned */
    int nlayouts;
    pack_entry *packs;        /* packed weights, open addressing, cap a power of two, owned */
    size_t pack_cap, pack_count;
    size_t packed_bytes;      /* the packed copies' size */
    prim_key *homes;          /* each shape's home row count (home_rows), nhomes, owned */
    int nhomes;
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

/* FNV-1a over a key's bytes (the keys have no padding: ints, floats, one pointer first). */
static size_t key_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return (size_t)h;
}

static prim_entry *slot_for(prim_entry *table, size_t cap, const prim_key *key)
{
    size_t i = key_hash(key, sizeof *key) & (cap - 1);
    while (table[i].prim && memcmp(&table[i].key, key, sizeof *key))
        i = (i + 1) & (cap - 1);
    return &table[i];
}

static pack_entry *pack_slot(pack_entry *table, size_t cap, const pack_key *key)
{
    size_t i = key_hash(key, sizeof *key) & (cap - 1);
    while (table[i].mem && memcmp(&table[i].key, key, sizeof *key))
        i = (i + 1) & (cap - 1);
    return &table[i];
}

/* Doubles the packed weights' table (keeps it at most half full). */
static int grow_packs(rs_gemm *g)
{
    size_t cap = g->pack_cap ? 2 * g->pack_cap : 64;
    pack_entry *t = calloc(cap, sizeof *t);
    if (!t)
        return RS_ENOMEM;
    for (size_t i = 0; i < g->pack_cap; i++)
        if (g->packs[i].mem)
            *pack_slot(t, cap, &g->packs[i].key) = g->packs[i];
    free(g->packs);
    g->packs = t;
    g->pack_cap = cap;
    return 0;
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

/* The index of weights layout MD in G's list of distinct layouts, added when new; -1 when
 * out of memory. Packed copies are keyed by this index, so that two primitives that chose
 * the same layout share one copy. */
static int weights_layout(rs_gemm *g, const dnnl_memory_desc_t *md)
{
    for (int i = 0; i < g->nlayouts; i++)
        if (dnnl_memory_desc_equal(&g->layouts[i], md))
            return i;
    dnnl_memory_desc_t *grown = realloc(g->layouts, sizeof *grown * (size_t)(g->nlayouts + 1));
    if (!grown)
        return -1;
    g->layouts = grown;
    g->layouts[g->nlayouts] = *md;
    return g->nlayouts++;
}

/* Creates the memory objects of KEY's primitive PD into E: A and C always, B unless B is
 * packed (then E's layout is the weights layout PD chose). */
static dnnl_status_t create_memories(rs_gemm *g, const prim_key *key, const dnnl_primitive_desc_t pd,
                                     const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b,
                                     const dnnl_memory_desc_t *c, prim_entry *e)
{
    dnnl_status_t st;
    e->layout = -1;
    if (key->packed && (e->layout = weights_layout(g, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0))) < 0)
        return dnnl_out_of_memory;
    if ((st = dnnl_memory_create(&e->a, a, g->engine, DNNL_MEMORY_NONE)) ||
        (st = dnnl_memory_create(&e->c, c, g->engine, DNNL_MEMORY_NONE)))
        return st;
    return key->packed ? dnnl_success : dnnl_memory_create(&e->b, b, g->engine, DNNL_MEMORY_NONE);
}

/* Creates KEY's primitive and memory objects into E. A packed key's weights descriptor
 * has format `any`: the primitive picks the layout its kernel reads B in (blocked, for
 * bf16 the VNNI pairs), which a plain B would make it pack again on every call. */
static dnnl_status_t create_entry(rs_gemm *g, const prim_key *key, prim_entry *e)
{
    dnnl_data_type_t dt = key->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t bdims = {key->k, key->n};
    dnnl_memory_desc_t a, b, c;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st;
    if ((st = matrix_md(&a, key->m, key->k, key->lda, key->trans_a, dt)) ||
        (st = key->packed ? dnnl_memory_desc_init_by_tag(&b, 2, bdims, dt, dnnl_format_tag_any)
                          : matrix_md(&b, key->k, key->n, key->ldb, key->trans_b, dt)) ||
        (st = matrix_md(&c, key->m, key->n, key->ldc, false, dnnl_f32)) ||
        (st = dnnl_matmul_desc_init(&desc, &a, &b, NULL, &c)) || (st = dnnl_primitive_attr_create(&attr)) ||
        (key->alpha != 1.0f && (st = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &key->alpha))))
        goto out;
    if (key->beta != 0.0f && ((st = dnnl_post_ops_create(&ops)) || (st = dnnl_post_ops_append_sum(ops, key->beta)) ||
                              (st = dnnl_primitive_attr_set_post_ops(attr, ops))))
        goto out;
    if ((st = dnnl_primitive_desc_create(&pd, &desc, attr, g->engine, NULL)) ||
        (st = create_memories(g, key, pd, &a, &b, &c, e)) || (st = dnnl_primitive_create(&e->prim, pd))) {
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

/* Reorders weight W (KEY's plain B) into layout LAYOUT, a new memory object into *OUT. */
static dnnl_status_t pack(rs_gemm *g, const prim_key *key, int layout, const void *w, dnnl_memory_t *out)
{
    dnnl_memory_desc_t plain;
    dnnl_memory_t src = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_status_t st;
    if (!(st = matrix_md(&plain, key->k, key->n, key->ldb, key->trans_b, key->bf16 ? dnnl_bf16 : dnnl_f32)) &&
        !(st = dnnl_memory_create(&src, &plain, g->engine, (void *)w)) &&
        !(st = dnnl_memory_create(out, &g->layouts[layout], g->engine, DNNL_MEMORY_ALLOCATE)) &&
        !(st = dnnl_reorder_primitive_desc_create(&pd, &plain, g->engine, &g->layouts[layout], g->engine, NULL)) &&
        !(st = dnnl_primitive_create(&reorder, pd))) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, *out}};
        if (!(st = dnnl_primitive_execute(reorder, g->stream, 2, args)))
            st = dnnl_stream_wait(g->stream);
    }
    if (st) {
        dnnl_memory_destroy(*out);
        *out = NULL;
    }
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(src);
    return st;
}

/* The copy of weight W in entry E's layout, packed on first use; NULL after a failure. */
static dnnl_memory_t packed_weight(rs_gemm *g, const prim_entry *e, const void *w)
{
    const prim_key *key = &e->key;
    pack_key pk = {w, key->n, key->k, key->ldb, key->trans_b, key->bf16, e->layout};
    if (2 * (g->pack_count + 1) > g->pack_cap && grow_packs(g)) {
        fail(g, RS_ENOMEM, "growing the packed weights' table", dnnl_out_of_memory);
        return NULL;
    }
    pack_entry *slot = pack_slot(g->packs, g->pack_cap, &pk);
    if (slot->mem)
        return slot->mem;
    dnnl_status_t st = pack(g, key, e->layout, w, &slot->mem);
    if (st) {
        fail(g, st == dnnl_out_of_memory ? RS_ENOMEM : RS_EINVAL, "packing a weight", st);
        return NULL;
    }
    slot->key = pk;
    g->pack_count++;
    g->packed_bytes += dnnl_memory_desc_get_size(&g->layouts[e->layout]);
    return slot->mem;
}

/* The largest power of two <= LEFT (0 when none is left): products of other than their
 * shape's home row count run in such row blocks, so that a shape needs at most one
 * primitive per bit of its row count instead of one per row count (expert products see a
 * new one in almost every group). */
static int row_block(int left)
{
    int rows = 1;
    if (left <= 0)
        return 0;
    while (rows <= left / 2)
        rows *= 2;
    return rows;
}

/* The home row count of SHAPE (a key with m = 0): the first m it was called with, which
 * runs as one block. Attention products always have T rows and a group's dense products
 * mostly the same N: one call and one primitive for them, not one per power of two (50
 * rows were 32 + 16 + 2, three calls). 0 when out of memory (then every m runs in blocks). */
static int home_rows(rs_gemm *g, const prim_key *shape, int m)
{
    for (int i = 0; i < g->nhomes; i++) {
        prim_key h = g->homes[i];
        int rows = h.m;
        h.m = 0;
        if (!memcmp(&h, shape, sizeof h))
            return rows;
    }
    prim_key *grown = realloc(g->homes, sizeof *grown * (size_t)(g->nhomes + 1));
    if (!grown)
        return 0;
    g->homes = grown;
    g->homes[g->nhomes] = *shape;
    g->homes[g->nhomes++].m = m;
    return m;
}

/* The cached primitive of KEY, created on first use; NULL after a failure. */
static prim_entry *entry_for(rs_gemm *g, const prim_key *key)
{
    if (2 * (g->count + 1) > g->cap && grow(g)) {
        fail(g, RS_ENOMEM, "growing the primitive cache", dnnl_out_of_memory);
        return NULL;
    }
    prim_entry *e = slot_for(g->table, g->cap, key);
    if (!e->prim) {
        dnnl_status_t st = create_entry(g, key, e);
        if (st) {
            fail(g, st == dnnl_out_of_memory ? RS_ENOMEM : RS_EINVAL, "creating a matmul primitive", st);
            return NULL;
        }
        g->count++;
    }
    return e;
}

/* Runs KEY on A, B, C, creating its primitive (and, for a packed key, B's packed copy) on
 * first use. */
static void run_dnnl(rs_gemm *g, const prim_key *key, const void *a, const void *b, float *c)
{
    if (g->status.code)
        return;
    /* oneDNN parallelises over OpenMP's thread count of the calling thread: one thread,
     * as cblas_sgemm here, so that the split never depends on where the call runs. */
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    prim_entry *e = entry_for(g, key);
    dnnl_memory_t bm = !e ? NULL : key->packed ? packed_weight(g, e, b) : e->b;
    dnnl_status_t st;
    if (bm) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, e->c}};
        if ((st = dnnl_memory_set_data_handle(e->a, (void *)a)) ||
            (!key->packed && (st = dnnl_memory_set_data_handle(e->b, (void *)b))) ||
            (st = dnnl_memory_set_data_handle(e->c, c)) || (st = dnnl_primitive_execute(e->prim, g->stream, 3, args)) ||
            (st = dnnl_stream_wait(g->stream)))
            fail(g, RS_EINVAL, "executing a matmul", st);
    }
    omp_set_num_threads(threads);
}
#endif

/* Runs SHAPE (a key with m = 0) on the M rows of A (A_ROW bytes apart), B and C: in one
 * block when M is the shape's home row count, else in power-of-two blocks (gemm.h: a row's
 * value does not depend on the block). */
static void run_rows(rs_gemm *g, prim_key shape, int m, const char *a, size_t a_row, const void *b, float *c)
{
    int home = home_rows(g, &shape, m);
    for (int row = 0, rows; (rows = m == home ? m - row : row_block(m - row)) > 0; row += rows) {
        shape.m = rows;
        run_dnnl(g, &shape, a + row * a_row, b, c + (size_t)row * shape.ldc);
    }
}

/* rs_gemm_f32 and rs_gemm_weight_f32: PACKED says B is a weight (gemm.h). */
static void gemm_f32(rs_gemm *g, bool packed, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
#ifdef RS_HAVE_DNNL
    if (g->backend == RS_GEMM_ONEDNN) {
        prim_key shape = {trans_a, trans_b, 0, packed, 0, n, k, lda, ldb, ldc, alpha, beta};
        run_rows(g, shape, m, (const char *)a, sizeof *a * (trans_a ? 1 : (size_t)lda), b, c);
        return;
    }
#else
    (void)packed;
#endif
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

void rs_gemm_f32(rs_gemm *g, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc)
{
    gemm_f32(g, false, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void rs_gemm_weight_f32(rs_gemm *g, bool trans_w, int m, int n, int k, const float *a, int lda, const float *w,
                        int ldw, float beta, float *c, int ldc)
{
    gemm_f32(g, true, false, trans_w, m, n, k, 1.0f, a, lda, w, ldw, beta, c, ldc);
}

size_t rs_gemm_packed_bytes(const rs_gemm *g)
{
#ifdef RS_HAVE_DNNL
    return g->packed_bytes;
#else
    (void)g;
    return 0;
#endif
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
    prim_key shape = {0, 1, 1, 1, 0, n, k, k, k, ldc, 1.0f, beta};
    run_rows(g, shape, m, (const char *)g->abuf, sizeof *g->abuf * (size_t)k, w, c);
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
    for (size_t i = 0; i < g->pack_cap; i++)
        dnnl_memory_destroy(g->packs[i].mem);
    free(g->table);
    free(g->packs);
    free(g->layouts);
    free(g->homes);
    free(g->abuf);
    if (g->stream)
        dnnl_stream_destroy(g->stream);
    if (g->engine)
        dnnl_engine_destroy(g->engine);
#endif
    free(g);
}
