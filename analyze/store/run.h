/* run.h — a stored run as one object: everything the commands, figures and reports about a
 * stored run need, read from the store (and, for pictures, the run's data source), never
 * from the checkpoint.
 *
 * A run is described by its rs_run_info (store.h): shapes, the model's k, input shape and
 * class names are stored columns (store schema 2; docs/store.md). This module adds what
 * several callers used to rebuild each on their own:
 *   - loading a run by id, or the last finished one, with a message that lists the valid
 *     ids when the run does not exist; finding the run a user names ("last", "mine/pair");
 *   - its names and labels: the model's file-name stem, the one-line label of figures and
 *     headings, the name of its files and csv/json rows, whether it is a noise run;
 *   - what differs between two runs (rs_run_difference), the one test of "comparable" that
 *     compare, groups and reports share;
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

/* A run as users name it on the command line (README "Analysing your own checkpoint"):
 *   "ID"              the run with that id (a positive decimal integer);
 *   "last"            the last finished run;
 *   "MODEL/PROTOCOL"  the last finished run of the checkpoint whose file-name stem
 *                     (rs_run_model_stem) is MODEL, replayed with PROTOCOL ("mine/pair").
 * rs_run_selector_ok checks TEXT's form only (no store needed), so that callers can refuse
 * a malformed one as bad usage before opening anything. */
bool rs_run_selector_ok(const char *text);
/* The id of the run TEXT names in STORE (NAME: the database in messages). An "ID" is
 * returned as it is (rs_run_load says when it does not exist). RS_EINVAL when TEXT is
 * malformed or names no finished run; the message lists the finished runs as MODEL/PROTOCOL
 * (at most the first few). */
int rs_run_select(rs_store *store, const char *name, const char *text, int64_t *id, rs_error *err);

/* The model's file name without folder and ".safetensors" ("fmnist-prc-k1"); "?" when the
 * run has no model path. The one place that strips the extension. */
void rs_run_model_stem(const rs_run_info *run, char *buf, size_t size);
/* How figures and tables name the run's model: its stem and the sha256 prefix, e.g.
 * "fmnist-prc-k2 (39c0917602db)" (readers know models by name, the hash ties the name to
 * the bytes); "?" parts when RUN lacks them. */
void rs_run_model_label(const rs_run_info *run, char *buf, size_t size);
/* The same with the model's k: "fmnist-prc-k2 (39c0917602db, k=2)". */
void rs_run_model_k_label(const rs_run_info *run, char *buf, size_t size);
/* "PRC k=1 (run 3)": the training method (the model's stem when it is not known), k and
 * the run id, where a table has little room. */
void rs_run_short_label(const rs_run_info *run, char *buf, size_t size);
/* One line describing the run for notes above tables: model, data and slice, protocol,
 * views, images done and seed. */
void rs_run_note(const rs_run_info *run, char *buf, size_t size);
/* "run ID: MODEL, k=K, PROTOCOL, seed S" (MODEL: rs_run_model_label), as figures and
 * headings name a run. */
void rs_run_label(const rs_run_info *run, char *buf, size_t size);
/* The run id alone, as it names files and csv/json rows. */
void rs_run_name(const rs_run_info *run, char *buf, size_t size);
/* True for a run of the noise protocol (the clean view, then the severities). */
bool rs_run_is_noise(const rs_run_info *run);

/* The fields that make two runs comparable (rs_run_difference's WHAT), in the order they
 * are checked and listed. */
enum {
    RS_RUN_DIFF_DATA = 1u << 0,      /* the data source */
    RS_RUN_DIFF_SLICE = 1u << 1,     /* the offset and count asked for */
    RS_RUN_DIFF_IMAGES = 1u << 2,    /* the images done: first and last */
    RS_RUN_DIFF_PROTOCOL = 1u << 3,
    RS_RUN_DIFF_VIEWS = 1u << 4,     /* the number of views, then each view's spec */
    RS_RUN_DIFF_SEED = 1u << 5,      /* the view seed (same seed, same augmented views) */
    RS_RUN_DIFF_SHAPES = 1u << 6,    /* the MoE layers and the patch grid */
    RS_RUN_DIFF_MODEL = 1u << 7,     /* the checkpoint (sha256) */
    RS_RUN_DIFF_DISPATCH = 1u << 8,  /* capacity factor, images per group, BPR */
    /* What `compare` requires: the same images of the same data under the same views. */
    RS_RUN_DIFF_IDENTITY = RS_RUN_DIFF_DATA | RS_RUN_DIFF_SLICE | RS_RUN_DIFF_PROTOCOL | RS_RUN_DIFF_VIEWS |
                           RS_RUN_DIFF_SEED,
};

/* How rs_run_difference words what it finds. Each caller's words are those its users (and
 * tests) already read. */
typedef enum rs_run_diff_form {
    RS_RUN_DIFF_LIST,       /* every difference, joined by "; ": "data 'a' vs 'b'; seed 0 vs 1"
                             * (compare's refusal, the interference mismatch) */
    RS_RUN_DIFF_FIRST,      /* the first difference in the list's words, the seed named "view
                             * seed 0 vs 1" (the groups' refusal) */
    RS_RUN_DIFF_SENTENCE,   /* the first difference as "seed differs (0 vs 1: different augmented
                             * views)" (a report's flag on a run and its baseline) */
} rs_run_diff_form;

/* What differs between runs A and B among the fields WHAT (RS_RUN_DIFF_* bits), checked in
 * the enum's order, worded as FORM into BUF ("" when nothing; BUF may be NULL with SIZE 0).
 * Returns the bits of the fields that differ: 0 when A and B are comparable in WHAT. */
unsigned rs_run_difference(const rs_run_info *a, const rs_run_info *b, unsigned what, rs_run_diff_form form,
                           char *buf, size_t size);

/* "CLS NAME" when the run knows class CLS's name, "CLS" otherwise, "?" for CLS < 0. */
const char *rs_run_class_name(const rs_run_info *run, int cls, char *buf, size_t size);

/* The training method of a run's model. */
typedef enum rs_method {
    RS_METHOD_OTHER,
    RS_METHOD_VMOE,     /* V-MoE: balancing losses */
    RS_METHOD_PRC,      /* V-MoE+PRC: patch-level routing consistency loss */
    RS_METHOD_JSD,      /* V-MoE+JSD: mean JSD of matched router distributions */
    RS_METHOD_ADV,      /* V-MoE trained on PGD examples */
    RS_METHOD_ADVMOE,   /* AdvMoE: router-expert alternating adversarial training */
    RS_METHOD_COUNT
} rs_method;

/* The one owner of "method of a run": the model's stored config "method" (vmoe, prc, jsd,
 * adv, advmoe; any other name is RS_METHOD_OTHER) or, for checkpoints without it, the
 * checkpoint's file name ("prc", "jsd", "advmoe", "adv", then "vmoe" or "v-moe" in the name,
 * case-insensitive;
 * else other). NULL gives RS_METHOD_OTHER. */
rs_method rs_run_method(const rs_run_info *run);
/* Display name: "V-MoE", "V-MoE+PRC", "V-MoE+JSD", "V-MoE (adv.)", "AdvMoE", "other". */
const char *rs_method_name(rs_method m);
/* Short name as in checkpoints: "vmoe", "prc", "jsd", "adv", "advmoe", "other". */
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
    float *probs;       /* (V, L, T, E); NULL for a run recorded with --record topk */
} rs_image_routing;

/* Reads image IMAGE (source index) of run RUN; RS_EINVAL when the run does not hold it,
 * RS_EFORMAT when its records are incomplete or hold an expert id >= E. */
int rs_run_image_routing(rs_store *store, const rs_run_info *run, int image, rs_image_routing *out,
                         rs_error *err);
void rs_image_routing_free(rs_image_routing *r);
/* Keeps views VIEWS[0..N) of R in place, in that order (ascending, VIEWS[0] = 0, each below
 * R->views): a figure of a run with many views shows some of them. Matches stay valid
 * because they point into view 0, which stays first. */
void rs_image_routing_keep_views(rs_image_routing *r, const int *views, int n);

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
