/* group.h — how a batch is cut into groups and the groups spread over threads: the one
 * loop that the forward pass (forward.c) and its gradient (grad.c) both run; internal to
 * model/.
 *
 * The determinism rule: a batch is cut into groups of G consecutive images (the last may
 * hold fewer), G fixed by the model and the dispatch (rs_group_for_dispatch), and each
 * group runs the whole network as one unit on one thread: every dense layer is one GEMM
 * over the group's tokens, and the MoE layer gathers the group's tokens by expert so that
 * each expert is one GEMM. OpenBLAS rounds a row of a product differently depending on
 * where it sits in the call, so this is what makes outputs independent of the thread
 * count, and of the batch size too when batches start at multiples of G: every product
 * then sees exactly the same rows. Hence: threads take whole groups, each with its own
 * workspace, and BLAS itself runs single-threaded inside them (the callers set OpenBLAS to
 * one thread, rs_blas_set_threads in forward.h).
 *
 * Groups and dispatch groups: with a capacity factor a group holds m whole dispatch groups
 * of dispatch.h (G = m x group_images, m the largest power of two that keeps G's tokens
 * within RS_GROUP_TOKENS, at least 1). The MoE layers dispatch each dispatch group of the
 * group on its own (its own capacity, priority order and kept mask, exactly what it gets
 * alone), then gather the kept choices of the whole group by expert; the dense, attention
 * and expert products run once per group, so the weights are packed once for m dispatch
 * groups. m is a power of two so that a group and a group seed's window of
 * RS_GROUP_WINDOW_GROUPS dispatch groups (analyze/replay/group_order.h) always divide one
 * another. */
#ifndef RS_GROUP_H
#define RS_GROUP_H

#include <stdbool.h>

#include "config.h"
#include "dispatch.h"
#include "rs_error.h"

/* Tokens per group: enough rows for an efficient GEMM, few enough that a group's
 * activations stay near the caches and a batch splits into many groups for the threads. */
#define RS_GROUP_TOKENS 1024

/* G: images per group for this model when no dispatch group sets it. */
static inline int rs_group_images(const rs_config *c)
{
    int T = rs_config_tokens(c);
    return RS_GROUP_TOKENS / T > 1 ? RS_GROUP_TOKENS / T : 1;
}

/* The groups of a pass with dispatch DISPATCH: *GROUP images per group (G above) and
 * *DISPATCH_GROUP images per dispatch group, 0 when DISPATCH sets no capacity (NULL or
 * capacity_factor 0; G is then rs_group_images). RS_EINVAL, the message starting with WHO,
 * unless its group and factor are within dispatch.h's bounds and give a capacity, and bf16
 * or pad_last come with one. The forward pass and its gradient both check their dispatch
 * here, so they accept exactly the same ones and cut the same groups. */
int rs_group_for_dispatch(const rs_config *c, const rs_dispatch *dispatch, const char *who, int *group,
                          int *dispatch_group, rs_error *err);

/* Images a group of N images runs as: N, or with D's pad_last N raised to whole dispatch
 * groups (a short last dispatch group padded). D NULL: no dispatch. */
int rs_group_padded(const rs_dispatch *d, int n);

/* A short group of N images at IMAGES padded to GROUP images in BUF (GROUP,C,H,W), which it
 * returns: the N images copied, then all-zero model inputs — 0 for normalised IMAGES, each
 * channel's mean for [0,1] PIXELS (which normalise to exactly 0). */
const float *rs_group_pad(const rs_config *c, const float *images, int n, int group, bool pixels, float *buf);

/* Threads worth a workspace for batches of up to MAX_BATCH images in groups of GROUP:
 * THREADS, but no more than there are groups (more would only hold memory). */
int rs_group_threads(int max_batch, int group, int threads);

/* Runs one group: images FIRST .. FIRST+N-1 of the batch, on the thread with index
 * THREAD (0 .. threads-1, the workspace to use). CTX is the caller's. */
typedef void rs_group_fn(void *ctx, int thread, int first, int n);

/* Calls FN for every group of GROUP consecutive images of BATCH, on up to THREADS OpenMP
 * threads; no two concurrent calls get the same THREAD. Each group runs whole on one
 * thread, groups in any order. */
void rs_group_run(int batch, int group, int threads, rs_group_fn *fn, void *ctx);

#endif
