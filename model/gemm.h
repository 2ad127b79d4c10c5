/* gemm.h — the one matrix product interface of model/: every product of the forward pass
 * and the gradient goes through rs_gemm_f32, rs_gemm_weight_f32 (B a weight of the model)
 * or rs_gemm_bf16, row-major, shapes as BLAS
 * has them (C (m,n) = alpha op(A) (m,k) op(B) (k,n) + beta C, leading dimensions in
 * elements). Expert batches are one call per expert over its gathered rows.
 *
 * Backends: OpenBLAS cblas_sgemm (always built), and oneDNN matmul primitives (built when
 * meson finds libdnnl, RS_HAVE_DNNL). oneDNN runs the m rows of a shape (n, k,
 * transposes, leading dimensions, alpha, beta, precision) in one block when m is the
 * shape's home row count — the m of its first call in this object: T for attention
 * products, a full group's rows for dense ones — and otherwise in blocks of powers of two
 * (m = 200: 128 + 64 + 8). Its primitives are created once per exact block shape and kept
 * in this object's cache until rs_gemm_free, so a shape needs at most one primitive per bit
 * of m, plus its home one, however many row counts the experts see; a call only points the
 * cached memory objects at its arrays and executes.
 *
 * Weights (rs_gemm_weight_f32, rs_gemm_bf16): B is a weight of the model, so oneDNN gets
 * it once in the layout its kernel reads (blocked; bfloat16 in VNNI pairs) instead of
 * packing a plain B again on every call. The primitive is created with the weights'
 * layout left to oneDNN (format `any`); the first call with a weight reorders it into the
 * chosen layout, and this object keeps that packed copy, keyed by the weight's address,
 * shape and the layout, until rs_gemm_free. So the weight must stay alive and unchanged
 * for the life of the object (a forward or gradient state's model does). Memory: one
 * packed copy per weight and per distinct layout the row blocks chose (one on the models'
 * shapes; rs_gemm_packed_bytes says), about the size of the weights this thread multiplies
 * by — f32 weights are held twice, bf16 weights once more besides their twin — in each
 * object, i.e. per worker thread (S/32 in f32: 227 MB per thread). OpenBLAS reads the
 * weight in place, as rs_gemm_f32 does.
 *
 * Determinism (what the store's promise needs: records independent of --threads and
 * --batch): a call computes on the calling thread only (OpenBLAS's thread count is set to
 * 1 by the forward state; oneDNN runs with OpenMP's thread count 1 around creation and
 * execution), and every row of C depends only on its own row of A, whatever m or the row
 * block is — so neither the blocks nor which m came first (the home row count) changes a
 * value. For oneDNN that holds for its brgemm kernels with a fixed m, plain or packed
 * weights (tests/test_gemm.c checks it on the models' shapes for every m up to 300,
 * tests/onednn_test.sh on whole runs); its runtime-m jit gemm and its AMX bf16 kernels
 * change their blocking with m, so the shapes are never runtime and rs_gemm_create caps
 * oneDNN's ISA at avx512_core_bf16 (process-wide, once, before oneDNN creates anything).
 *
 * bfloat16 (RS_PRECISION_BF16, oneDNN only): rs_gemm_bf16 rounds A to bfloat16 (nearest
 * even) into a scratch buffer of this object and multiplies by bfloat16 weights with float32
 * accumulation and output. Needs avx512_bf16 (rs_gemm_check).
 *
 * Errors: a product cannot fail with OpenBLAS; a oneDNN call can (out of memory, a
 * primitive oneDNN refuses). A failed call leaves C as it was, and the first failure sticks
 * in the object: the caller asks rs_gemm_status after the pass, as reports/table.h does.
 * One rs_gemm serves one thread at a time (the forward and gradient states keep one per
 * worker thread). */
#ifndef RS_GEMM_H
#define RS_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rs_error.h"

typedef enum rs_gemm_backend { RS_GEMM_OPENBLAS, RS_GEMM_ONEDNN } rs_gemm_backend;
typedef enum rs_precision { RS_PRECISION_F32, RS_PRECISION_BF16 } rs_precision;

typedef struct rs_gemm rs_gemm;

/* Whether BACKEND was built in. */
bool rs_gemm_available(rs_gemm_backend backend);
/* "openblas" / "onednn"; "f32" / "bf16". */
const char *rs_gemm_backend_name(rs_gemm_backend backend);
const char *rs_precision_name(rs_precision precision);
/* Parses a name of the two above: 0, or RS_EINVAL naming the choices. */
int rs_gemm_backend_parse(const char *text, rs_gemm_backend *out, rs_error *err);
int rs_precision_parse(const char *text, rs_precision *out, rs_error *err);

/* Checks that BACKEND and PRECISION can run here: RS_EINVAL for a backend not built
 * in, bf16 without oneDNN, or bf16 on a CPU without avx512_bf16 (one line naming it). */
int rs_gemm_check(rs_gemm_backend backend, rs_precision precision, rs_error *err);

/* A GEMM state for one thread; rs_gemm_check's errors, RS_ENOMEM. */
int rs_gemm_create(rs_gemm_backend backend, rs_precision precision, rs_gemm **out, rs_error *err);
void rs_gemm_free(rs_gemm *g);

/* The precision bf16 calls run at (rs_gemm_bf16 is only called when this is BF16). */
rs_precision rs_gemm_precision(const rs_gemm *g);

/* C = alpha op(A) op(B) + beta C in float32. */
void rs_gemm_f32(rs_gemm *g, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);

/* rs_gemm_f32 with B a weight (above): C (m,n) = A (m,k) op(W) + beta C, W (n,k) at
 * leading dimension LDW when TRANS_W, else (k,n). With OpenBLAS the very same cblas_sgemm
 * as rs_gemm_f32(g, false, trans_w, m, n, k, 1, a, lda, w, ldw, beta, c, ldc). */
void rs_gemm_weight_f32(rs_gemm *g, bool trans_w, int m, int n, int k, const float *a, int lda, const float *w,
                        int ldw, float beta, float *c, int ldc);

/* C (m,n) = A (m,k) W (n,k)^T + beta C with A rounded to bfloat16 and W a bfloat16 weight
 * (above; n rows of k, contiguous), float32 accumulation. */
void rs_gemm_bf16(rs_gemm *g, int m, int n, int k, const float *a, int lda, const uint16_t *w, float beta, float *c,
                  int ldc);

/* The bytes of the packed weights this object holds (0 with OpenBLAS). */
size_t rs_gemm_packed_bytes(const rs_gemm *g);

/* 0, or the first failure of a call since create (and the message in ERR). */
int rs_gemm_status(const rs_gemm *g, rs_error *err);

/* bfloat16 of X, round to nearest even, NaN stays NaN. */
static inline uint16_t rs_bf16_round(float x)
{
    uint32_t u;
    __builtin_memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#endif
