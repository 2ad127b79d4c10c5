/* group_order.c — seeded group composition (contract in group_order.h). */
#include "group_order.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <stdio.h>

#include "forward.h"
#include "rs_seed.h"

int rs_group_order(uint64_t seed, int window, int first, int n, int count, int32_t *order, int32_t *slot,
                   rs_error *err)
{
    if (window < 1 || first < 0 || n < 1 || first % window || first + (int64_t)n > count ||
        (first + n < count && (first + n) % window))
        return rs_error_set(err, RS_EINVAL,
                            "group seed: images %d..%d of a job of %d do not cover whole windows of %d images", first,
                            first + n - 1, count, window);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!rng)
        return rs_error_set(err, RS_ENOMEM, "group seed: out of memory");
    for (int start = 0; start < n; start += window) {
        int len = n - start < window ? n - start : window;
        for (int i = 0; i < len; i++)
            order[start + i] = start + i;
        uint64_t w = (uint64_t)((first + start) / window);
        gsl_rng_set(rng, (unsigned long)rs_seed_mix(rs_seed_mix(seed) ^ w));
        gsl_ran_shuffle(rng, order + start, (size_t)len, sizeof *order);
    }
    gsl_rng_free(rng);
    for (int i = 0; i < n; i++)
        slot[order[i]] = i;
    return 0;
}

int rs_group_images_of_tokens(const rs_config *c, long long group_tokens, int *group_images, rs_error *err)
{
    int T = rs_config_tokens(c), Np = rs_config_patches(c);
    char tokens[96];
    if (T > Np)
        snprintf(tokens, sizeof tokens, "%d tokens (%d patches and the class token)", T, Np);
    else
        snprintf(tokens, sizeof tokens, "%d tokens (%d patches)", T, Np);
    if (group_tokens < T || group_tokens % T || group_tokens / T > RS_DISPATCH_MAX_GROUP_IMAGES)
        return rs_error_set(err, RS_EINVAL,
                            "--group-size %lld: dispatch groups are whole images and this model's images have %s, "
                            "so S must be a multiple of %d up to %lld (%d, %d, %d, ...; S = %d x --group-images)",
                            group_tokens, tokens, T, (long long)T * RS_DISPATCH_MAX_GROUP_IMAGES, T, 2 * T, 3 * T, T);
    *group_images = (int)(group_tokens / T);
    return 0;
}

int rs_group_seed_check(bool has_group_seed, const rs_dispatch *d, rs_error *err)
{
    if (has_group_seed && !(d->capacity_factor > 0))
        return rs_error_set(err, RS_EINVAL, "a group seed shuffles dispatch groups: it needs a capacity factor");
    return 0;
}

int rs_group_dispatch_resolve(const rs_config *c, const char *model_name, bool from_model, const rs_dispatch *given,
                              long long group_tokens, bool has_group_seed, rs_dispatch *out, rs_error *err)
{
    if (from_model && c->dispatch.capacity_factor == 0)
        return rs_error_set(err, RS_EINVAL, "%s: --dispatch model, but its config carries no dispatch settings",
                            model_name);
    *out = from_model ? c->dispatch : *given;
    if (from_model) /* the published settings as vmoe evaluates: its input pipeline pads the last batch */
        out->pad_last = true;
    int rc = group_tokens > 0 ? rs_group_images_of_tokens(c, group_tokens, &out->group_images, err) : 0;
    return rc ? rc : rs_group_seed_check(has_group_seed, out, err);
}

int rs_group_batch_unit(const rs_model *model, const rs_dispatch *d, bool has_group_seed, int *unit, int *window,
                        rs_error *err)
{
    rs_forward *probe; /* owned here: only asked its group size */
    int rc = rs_forward_create_dispatch(model, 1, 1, d, &probe, err);
    *unit = rc ? 0 : rs_forward_group_size(probe);
    *window = !rc && has_group_seed ? rs_group_window(d->group_images) : 0;
    if (*window > *unit)
        *unit = *window;
    rs_forward_free(probe);
    return rc;
}
