/* group.c — the group loop of the forward and gradient passes (contract in group.h). */
#include "group.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* G for dispatch groups of DG images: m = the largest power of two with m x DG x T within
 * RS_GROUP_TOKENS (at least 1) dispatch groups (group.h says why a power of two). */
static int group_of_dispatch_groups(const rs_config *c, int dg)
{
    long long tokens = (long long)dg * rs_config_tokens(c);
    int m = 1;
    while (2 * m * tokens <= RS_GROUP_TOKENS) /* tokens >= 1, so m stays <= RS_GROUP_TOKENS */
        m *= 2;
    return m * dg;
}

int rs_group_for_dispatch(const rs_config *c, const rs_dispatch *d, const char *who, int *group, int *dispatch_group,
                          rs_error *err)
{
    *group = rs_group_images(c);
    *dispatch_group = 0;
    if (d && d->capacity_factor == 0 && (d->bf16 || d->pad_last))
        return rs_error_set(err, RS_EINVAL, "%s: bfloat16 dispatch and a padded last group need a capacity factor",
                            who);
    if (!d || d->capacity_factor == 0)
        return 0;
    if (!(d->capacity_factor > 0 && d->capacity_factor <= RS_DISPATCH_MAX_FACTOR))
        return rs_error_set(err, RS_EINVAL, "%s: capacity factor %g outside (0, %g]", who, d->capacity_factor,
                            RS_DISPATCH_MAX_FACTOR);
    if (d->group_images < 1 || d->group_images > RS_DISPATCH_MAX_GROUP_IMAGES)
        return rs_error_set(err, RS_EINVAL, "%s: dispatch group of %d images outside [1, %d]", who,
                            d->group_images, RS_DISPATCH_MAX_GROUP_IMAGES);
    long long tokens = (long long)d->group_images * rs_config_tokens(c);
    if (!rs_dispatch_capacity(tokens, c->top_k, c->num_experts, d->capacity_factor))
        return rs_error_set(err, RS_EINVAL, "%s: capacity factor %g over %lld tokens gives no capacity", who,
                            d->capacity_factor, tokens);
    *dispatch_group = d->group_images;
    *group = group_of_dispatch_groups(c, d->group_images);
    return 0;
}

int rs_group_threads(int max_batch, int group, int threads)
{
    int groups = (max_batch + group - 1) / group;
    return threads < groups ? threads : groups;
}

void rs_group_run(int batch, int group, int threads, rs_group_fn *fn, void *ctx)
{
    int groups = (batch + group - 1) / group;
    /* Dynamic: groups cost the same, but a thread may lose its core for a while. */
    #pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if(threads > 1 && groups > 1)
    for (int g = 0; g < groups; g++) {
        int thread = 0;
#ifdef _OPENMP
        thread = omp_get_thread_num();
#endif
        int first = g * group;
        fn(ctx, thread, first, batch - first < group ? batch - first : group);
    }
}

const float *rs_group_pad(const rs_config *c, const float *images, int n, int group, bool pixels, float *buf)
{
    size_t plane = (size_t)c->image_h * c->image_w, img = (size_t)c->channels * plane;
    memcpy(buf, images, sizeof(float) * img * (size_t)n);
    for (int b = n; b < group; b++)
        for (int ch = 0; ch < c->channels; ch++) {
            /* (mean - mean) / std is exactly 0: the pixel that normalises to zero. */
            float v = pixels ? c->mean[ch] : 0.0f, *dst = buf + (size_t)b * img + (size_t)ch * plane;
            for (size_t i = 0; i < plane; i++)
                dst[i] = v;
        }
    return buf;
}

int rs_group_padded(const rs_dispatch *d, int n)
{
    if (!d || !d->pad_last)
        return n;
    return (n + d->group_images - 1) / d->group_images * d->group_images;
}
