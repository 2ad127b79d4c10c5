/* run.h — a stored run as one object: everything the commands, figures and reports about a
 * stored run need, read from the store (and, for pictures, the run's data source), never
 * from the checkpoint.
 *
 * A run is described by its rs_run_info (store.h): shapes, the model's k, input shape and
 * class names are stored columns (store schema 2; docs/store.md). This module adds what
 * several callers used to rebuild each on their own:
 *   - loading a run by id, or the last finished one, with a message that lists the valid
 *     ids when the run does not exist;
 *   - the class name of a label;
 *   - the training method and seed of the run's model (its stored config, with a fallback
 *     to the checkpoint's file name for checkpoints that predate them);
 *   - one image's records gathered from the store (rs_image_routing), read by image, not by
 *     streaming the run from its start;
 *   - an image's views redrawn: the source image re-read from the run's data source and
 *     each view re-created from its spec, the run's seed and the image index (views depend
 *     only on (seed, image, view), so these are the pixels the replay saw);
 *   - per-image Top-1 agreement with view 0.
 *
 * Ownership: every function that fills a caller's pointer or struct allocates it; free
 * with the matching _free (NULL allowed) or free() where stated. Errors: 0 or a negative
 * RS_E* code with one line naming the database (or data file) and the run. Nothing is
 * printed. */
#ifndef RS_RUN_H
#define RS_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rs_error.h"
#include "store.h"

/* Run RUN_ID of STORE into INFO (zeroed or previously filled), or with RUN_ID 0 the last
 * run whose status is done. NAME is the database's name in messages. RS_EINVAL when there
 * is no such run (the message lists the runs there are) or no finished run; RS_EFORMAT
 * (INFO cleared) when the run fails rs_store_check_run, which every reader goes through here. */
int rs_run_load(rs_store *store, const char *name, int64_t run_id, rs_run_info *info, rs_error *err);

/* "CLS NAME" when the run knows class CLS's name, "CLS" otherwise, "?" for CLS < 0. */
const char *rs_run_class_name(const rs_run_info *run, int cls, char *buf, size_t size);

/* The training method of a run's model. */
typedef enum rs_method {
    RS_METHOD_OTHER,
    RS_METHOD_VMOE,     /* V-MoE: balancing losses */
    RS_METHOD_PRC,      /* V-MoE+PRC: patch-level routing consistency loss */
    RS_METHOD_JSD,      /* V-MoE+JSD: mean JSD of matched router distributions */
    RS_METHOD_ADV,      /* V-MoE trained on PGD examples */
    RS_METHOD_COUNT
} rs_method;

/* The one owner of "method of a run": the model's stored config "method" (vmoe, prc, jsd,
 * adv; any other name is RS_METHOD_OTHER) or, for checkpoints without it, the checkpoint's
 * file name ("prc", "jsd", "adv", then "vmoe" or "v-moe" in the name, case-insensitive;
 * else other). NULL gives RS_METHOD_OTHER. */
rs_method rs_run_method(const rs_run_info *run);
/* Display name: "V-MoE", "V-MoE+PRC", "V-MoE+JSD", "V-MoE (adv.)", "other". */
const char *rs_method_name(rs_method m);
/* Short name as in checkpoints: "vmoe", "prc", "jsd", "adv", "other". */
const char *rs_method_key(rs_method m);
/* The run's training seed (the model's "train_seed"), -1 when unknown. */
static inline long long rs_run_train_seed(const rs_run_info *run) { return run ? run->train_seed : -1; }

/* One image's records of a run. V views, L layers, T tokens, R record_k, E experts, Np
 * patches (grid_h x grid_w). Owned arrays; rs_image_routing_free. */
typedef struct rs_image_routing {
    int image, label, views, layers, tokens, record_k, experts, patches, grid_h, grid_w;
    bool has_cls;
    int *predicted;     /* (V) */
    float *pred_prob;   /* (V) */
    int16_t *match;     /* (V, Np) view 0's patch matched by each patch, -1 none */
    uint8_t *top_idx;   /* (V, L, T, R) */
    float *top_gate;    /* (V, L, T, R) */
    float *probs;       /* (V, L, T, E) */
} rs_image_routing;

/* Reads image IMAGE (source index) of run RUN; RS_EINVAL when the run does not hold it,
 * RS_EFORMAT when its records are incomplete or hold an expert id >= E. */
int rs_run_image_routing(rs_store *store, const rs_run_info *run, int image, rs_image_routing *out,
                         rs_error *err);
void rs_image_routing_free(rs_image_routing *r);

/* Top-1 expert of patch J of view V, layer L. */
static inline int rs_image_top1(const rs_image_routing *r, int v, int l, int j)
{
    return r->top_idx[(((size_t)v * r->layers + l) * r->tokens + j + r->has_cls) * r->record_k];
}

/* The pixels every view of image IMAGE had in the replay: (V, C, H, W) in [0, 1] with the
 * run's stored input shape, into *PIXELS (owned; free()). An attacked view (pgd:) gives the
 * pixels its attack started from: redoing the attack would need the model, and the
 * perturbation (at most eps per pixel) does not show at figure scale; a view with a base
 * starts from its base's pixels as in the replay. Reads the run's data source;
 * fails with the source's own message when it is gone or changed size, RS_EFORMAT when the
 * run predates stored input shapes and its config lacked them. */
int rs_run_view_pixels(const rs_run_info *run, int image, float **pixels, rs_error *err);

/* For every image of RUN: matched patch pairs and Top-1 agreements with view 0 over all
 * non-reference views and MoE layers, in one streaming pass. *PAIRS and *AGREE are owned
 * arrays of images_done entries, indexed by image - offset. */
int rs_run_image_top1(rs_store *store, const rs_run_info *run, int64_t **pairs, int64_t **agree,
                      rs_error *err);

#endif
