/* group_order.h — which images share a dispatch group (docs/dispatch.md, "Group seed").
 *
 * Without a group seed a dispatch group is group_images consecutive images of the run in
 * data order. With group seed s the job's images (positions 0 .. count-1 from the job's
 * first image) are cut into windows of W = RS_GROUP_WINDOWS_GROUPS x group_images
 * consecutive positions, window w = positions w·W .. w·W + W − 1 (the job's last window
 * holds what remains), and each window's images are shuffled: gsl_ran_shuffle with GSL's
 * mt19937 seeded from (s, w) through rs_seed_mix. The forward pass takes each window in
 * shuffled order, so a dispatch group is group_images consecutive images of that order,
 * and vanilla priority (earlier tokens first) follows it. Batches and shards are whole
 * windows, so the composition depends only on (s, the job's images), never on --batch,
 * --threads, sharding or resumption; records stay stored per image.
 *
 * Pure functions apart from the GSL generator each call allocates and frees. */
#ifndef RS_GROUP_ORDER_H
#define RS_GROUP_ORDER_H

#include <stdint.h>

#include <stdbool.h>

#include "config.h"
#include "dispatch.h"
#include "model.h"
#include "rs_error.h"

/* Dispatch groups per shuffled window: an image's batch-mates come from 8 groups' worth of
 * images, so a new seed changes most of them (each other image of the window shares the
 * group with probability (G−1)/(W−1), about 1/8). */
#define RS_GROUP_WINDOW_GROUPS 8

/* W for dispatch groups of GROUP_IMAGES images (>= 1). */
static inline int rs_group_window(int group_images)
{
    return RS_GROUP_WINDOW_GROUPS * group_images;
}

/* The forward order of the N images at job positions FIRST .. FIRST+N−1 of a job of COUNT
 * images with windows of WINDOW images: slot i of the batch takes image ORDER[i] (0 .. N−1,
 * relative to FIRST), and image j sits in slot SLOT[j]. FIRST must be a multiple of WINDOW
 * and the batch must end on a window boundary or at the job's end (RS_EINVAL otherwise: a
 * window cut by the batch would be shuffled differently). RS_ENOMEM when GSL cannot
 * allocate its generator. */
int rs_group_order(uint64_t seed, int window, int first, int n, int count, int32_t *order, int32_t *slot,
                   rs_error *err);

/* --group-size S (tokens): groups are whole images, so S must be a positive multiple of the
 * model's tokens per image T; then *GROUP_IMAGES = S / T. RS_EINVAL otherwise, with one line
 * that says why and which sizes work. */
int rs_group_images_of_tokens(const rs_config *c, long long group_tokens, int *group_images, rs_error *err);

/* A group seed shuffles dispatch groups, which only a capacity factor makes: RS_EINVAL when
 * HAS_GROUP_SEED and D has none, else 0. */
int rs_group_seed_check(bool has_group_seed, const rs_dispatch *d, rs_error *err);

/* The dispatch a job of model C (MODEL_NAME, for messages) runs with, into *OUT: the
 * model's own settings with a padded last group when FROM_MODEL (RS_EINVAL when its config
 * carries none), else
 * GIVEN; GROUP_TOKENS > 0 (--group-size) replaces its group_images
 * (rs_group_images_of_tokens); then rs_group_seed_check. One place for eval and replay. */
int rs_group_dispatch_resolve(const rs_config *c, const char *model_name, bool from_model, const rs_dispatch *given,
                              long long group_tokens, bool has_group_seed, rs_dispatch *out, rs_error *err);

/* What a job of MODEL with dispatch D cuts its batches and shards in, into *UNIT: the
 * forward pass's group size G (rs_forward_group_size: whole dispatch groups with a
 * capacity), or with HAS_GROUP_SEED the larger of G and the seed's window, *WINDOW
 * (rs_group_window; 0 without a seed). Both are powers of two times the dispatch group
 * (model/group.h), so the larger is a multiple of the other and batches of whole units
 * start both groups and windows at the same images whatever --batch is. The forward pass's
 * errors (RS_EINVAL for a dispatch it refuses, RS_ENOMEM). */
int rs_group_batch_unit(const rs_model *model, const rs_dispatch *d, bool has_group_seed, int *unit, int *window,
                        rs_error *err);

#endif
