/* The GEMM seam's row blocks and weight products (model/gemm.h: rs_gemm_weight_f32,
 * rs_gemm_bf16).
 *
 * OpenBLAS: rs_gemm_weight_f32 is rs_gemm_f32 bit for bit and packs nothing. oneDNN (when
 * built; bf16 where the CPU has avx512_bf16), on the layer shapes of the bundled and S/32
 * models: every row of a product with packed weights is bit for bit the same whatever the
 * number of rows (1 ... 300, so every power-of-two block from 1 to 256 and mixes of them)
 * and whether the row count is the shape's home one (one block) or not, which is what
 * keeps records independent of --batch; the same for the attention products (T = 50 rows
 * of Q K^T and P V); in f32 the packed product is the plain one bit for bit (packing
 * changes no record); and the packed copies do not grow with calls: one copy per weight,
 * of about the weight's size, after the first call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gemm.h"

enum { MAX_M = 300 };

/* (n, k) of a weight W (n,k): the tiny and S/32 models' qkv, projection, MLP / expert
 * layers and router. */
static const int shapes[][2] = {{192, 64}, {64, 64}, {256, 64}, {64, 256}, {8, 64},
                                {1536, 512}, {512, 512}, {2048, 512}, {512, 2048}, {8, 512}};
enum { NUM_SHAPES = sizeof shapes / sizeof shapes[0] };

/* Values in [-1, 1) from a fixed linear congruential sequence. */
static void fill(float *x, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
}

/* One product of M rows: A (M,K) times W^T into C, with the weight path of PRECISION. */
static void product(rs_gemm *g, int m, int n, int k, const float *a, const float *w, const uint16_t *wh, float *c)
{
    if (wh)
        rs_gemm_bf16(g, m, n, k, a, k, wh, 0.0f, c, n);
    else
        rs_gemm_weight_f32(g, true, m, n, k, a, k, w, k, 0.0f, c, n);
}

/* oneDNN: rows of every M in 1 ... MAX_M equal the MAX_M-row product's, which in f32 equals
 * the plain (unpacked) product's; packed copies stay put. */
static void check_rows(rs_precision precision)
{
    rs_gemm *g;
    rs_error err;
    assert_int_equal(rs_gemm_create(RS_GEMM_ONEDNN, precision, &g, &err), 0);
    size_t weights = 0;
    for (int s = 0; s < NUM_SHAPES; s++) {
        int n = shapes[s][0], k = shapes[s][1];
        float *a = malloc(sizeof *a * MAX_M * k), *w = malloc(sizeof *w * n * k);
        float *ref = malloc(sizeof *ref * MAX_M * n), *c = malloc(sizeof *c * MAX_M * n);
        uint16_t *wh = precision == RS_PRECISION_BF16 ? malloc(sizeof *wh * n * k) : NULL;
        assert_non_null(a), assert_non_null(w), assert_non_null(ref), assert_non_null(c);
        fill(a, (size_t)MAX_M * k, 1u + (uint32_t)s);
        fill(w, (size_t)n * k, 100u + (uint32_t)s);
        for (size_t i = 0; wh && i < (size_t)n * k; i++)
            wh[i] = rs_bf16_round(w[i]);
        product(g, MAX_M, n, k, a, w, wh, ref);
        size_t packed = rs_gemm_packed_bytes(g);
        if (!wh) {
            /* The same bits as the plain product (a run's records do not change with packing). */
            rs_gemm_f32(g, false, true, MAX_M, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
            assert_memory_equal(c, ref, sizeof *c * MAX_M * n);
        }
        for (int m = 1; m <= MAX_M; m++) {
            memset(c, 0, sizeof *c * m * n);
            product(g, m, n, k, a, w, wh, c);
            assert_memory_equal(c, ref, sizeof *c * m * n);
        }
        assert_int_equal(rs_gemm_packed_bytes(g), packed);
        /* A state whose home row count for the shape is 37: 300 rows run in blocks. */
        rs_gemm *g2;
        assert_int_equal(rs_gemm_create(RS_GEMM_ONEDNN, precision, &g2, &err), 0);
        product(g2, 37, n, k, a, w, wh, c);
        product(g2, MAX_M, n, k, a, w, wh, c);
        assert_memory_equal(c, ref, sizeof *c * MAX_M * n);
        rs_gemm_free(g2);
        weights += (size_t)n * k * (wh ? 2 : 4);
        free(a), free(w), free(ref), free(c), free(wh);
    }
    assert_int_equal(rs_gemm_status(g, &err), 0);
    /* One copy per weight (blocked layouts pad to their blocks, hence the slack). */
    assert_true(rs_gemm_packed_bytes(g) >= weights);
    assert_true(rs_gemm_packed_bytes(g) <= 2 * weights);
    rs_gemm_free(g);
}

/* rs_gemm_weight_f32 with OpenBLAS is the cblas_sgemm rs_gemm_f32 runs. */
static void test_openblas_same(void **state)
{
    (void)state;
    enum { m = 37, n = 24, k = 19 };
    float a[m * k], w[n * k], c1[m * n], c2[m * n];
    fill(a, m * k, 7), fill(w, n * k, 8), fill(c1, m * n, 9);
    memcpy(c2, c1, sizeof c1);
    rs_gemm *g;
    rs_error err;
    assert_int_equal(rs_gemm_create(RS_GEMM_OPENBLAS, RS_PRECISION_F32, &g, &err), 0);
    rs_gemm_f32(g, false, true, m, n, k, 1.0f, a, k, w, k, 0.5f, c1, n);
    rs_gemm_weight_f32(g, true, m, n, k, a, k, w, k, 0.5f, c2, n);
    assert_memory_equal(c1, c2, sizeof c1);
    assert_int_equal(rs_gemm_packed_bytes(g), 0);
    rs_gemm_free(g);
}

/* Attention products (plain rs_gemm_f32, T = 50 query rows; tiny's Dh 16, S/32's 64):
 * rows of every row count 1 ... 50 equal those of the 50-row product, the shape's home
 * row count (one block), whether or not B is transposed. */
static void test_onednn_attention_rows(void **state)
{
    (void)state;
    if (!rs_gemm_available(RS_GEMM_ONEDNN))
        skip();
    enum { T = 50 };
    rs_gemm *g;
    rs_error err;
    assert_int_equal(rs_gemm_create(RS_GEMM_ONEDNN, RS_PRECISION_F32, &g, &err), 0);
    for (int dh = 16; dh <= 64; dh *= 4) {
        float q[T * 64], kv[T * 64], ref[T * 64], c[T * 64]; /* T (T,T) or (T,Dh) products */
        fill(q, T * 64, 3u + (uint32_t)dh), fill(kv, T * 64, 4u + (uint32_t)dh);
        for (int trans = 0; trans < 2; trans++) {
            int n = trans ? T : dh, k = trans ? dh : T; /* Q K^T (T,T) or P V (T,Dh) */
            rs_gemm_f32(g, false, trans, T, n, k, 0.25f, q, k, kv, trans ? k : n, 0.0f, ref, n);
            for (int m = 1; m <= T; m++) {
                rs_gemm_f32(g, false, trans, m, n, k, 0.25f, q, k, kv, trans ? k : n, 0.0f, c, n);
                assert_memory_equal(c, ref, sizeof *c * m * n);
            }
        }
    }
    assert_int_equal(rs_gemm_status(g, &err), 0);
    rs_gemm_free(g);
}

static void test_onednn_rows(void **state)
{
    (void)state;
    if (!rs_gemm_available(RS_GEMM_ONEDNN))
        skip();
    check_rows(RS_PRECISION_F32);
}

static void test_onednn_bf16_rows(void **state)
{
    (void)state;
    rs_error err;
    if (rs_gemm_check(RS_GEMM_ONEDNN, RS_PRECISION_BF16, &err))
        skip();
    check_rows(RS_PRECISION_BF16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openblas_same),
        cmocka_unit_test(test_onednn_rows),
        cmocka_unit_test(test_onednn_attention_rows),
        cmocka_unit_test(test_onednn_bf16_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
