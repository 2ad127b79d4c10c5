/* dispatch.c — expert capacity and Batch Priority Routing (contract in dispatch.h). */
#include "dispatch.h"

#include <math.h>
#include <string.h>

int rs_dispatch_capacity(long long group_tokens, int k, int num_experts, double capacity_factor)
{
    if (group_tokens < 1 || k < 1 || num_experts < 1 || !(capacity_factor > 0) ||
        !(capacity_factor <= RS_DISPATCH_MAX_FACTOR))
        return 0;
    /* The same operations in the same order as vmoe (float64): (S*k) * cf / E, then ceil. */
    double c = ceil((double)(group_tokens * k) * capacity_factor / num_experts);
    if (c < 1 || c > INT32_MAX - 3)
        return 0;
    long long capacity = (long long)c;
    capacity += (4 - capacity % 4) % 4;
    return (int)capacity;
}

/* A gate as a sort key: NaN (a broken model) sorts after every number, so the order stays
 * a total order whatever the gates hold. */
static float priority(float gate)
{
    return isnan(gate) ? -INFINITY : gate;
}

/* ORDER[0..S) = tokens by decreasing top-1 gate, equal gates in token order: a bottom-up
 * merge sort (stable) through the scratch half TMP. */
static void priority_order(const float *top_gate, int S, int R, int32_t *order, int32_t *tmp)
{
    for (int i = 0; i < S; i++)
        order[i] = i;
    int32_t *src = order, *dst = tmp;
    for (int width = 1; width < S; width *= 2) {
        for (int lo = 0; lo < S; lo += 2 * width) {
            int mid = lo + width < S ? lo + width : S, hi = lo + 2 * width < S ? lo + 2 * width : S;
            int a = lo, b = mid, out = lo;
            while (a < mid && b < hi) {
                /* The right run's token goes first only when its gate is strictly larger. */
                bool right = priority(top_gate[(size_t)src[b] * R]) > priority(top_gate[(size_t)src[a] * R]);
                dst[out++] = right ? src[b++] : src[a++];
            }
            while (a < mid)
                dst[out++] = src[a++];
            while (b < hi)
                dst[out++] = src[b++];
        }
        int32_t *swap = src;
        src = dst;
        dst = swap;
    }
    if (src != order)
        memcpy(order, src, sizeof *order * (size_t)S);
}

void rs_dispatch_assign(const int32_t *top_idx, const float *top_gate, int S, int R, int k, int num_experts,
                        int capacity, bool bpr, int32_t *order, int32_t *fill, uint8_t *kept)
{
    if (bpr) {
        priority_order(top_gate, S, R, order, order + S);
    } else {
        for (int i = 0; i < S; i++)
            order[i] = i;
    }
    memset(fill, 0, sizeof *fill * (size_t)num_experts);
    memset(kept, 0, (size_t)S * R);
    /* Rank-major: all top-1 choices take their places before any top-2 choice. */
    for (int r = 0; r < k; r++) {
        for (int i = 0; i < S; i++) {
            size_t at = (size_t)order[i] * R + r;
            int e = top_idx[at];
            if (fill[e] < capacity) {
                fill[e]++;
                kept[at] = 1;
            }
        }
    }
}
