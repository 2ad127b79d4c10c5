/* replay.h — the replay engine: images x views -> per-patch routing in the store.
 *
 * For each image of the slice and each view of the protocol: decode and fit the image
 * (source.h), draw and render the view (view.h), normalise, run the forward pass
 * (forward.h), and record predictions, the patch match map against view 0 and every MoE
 * layer's routing (store.h). Batches are committed one transaction each.
 *
 * Views run in order. A view with base:view=V starts from view V's final pixels and takes
 * its geometry. A view with a pgd: operation is attacked last (attack.h): its reference
 * routing is the forward pass of its start pixels, its labels the data's, its oracle
 * model/grad.h; its routing and prediction are then the ordinary forward pass of the
 * attacked pixels (so eps = 0 records exactly what the unattacked view records), and the
 * attack's norms and objective per step go to the attacks table in the same transaction.
 * A view with route:from=F (a routing intervention) runs its forward pass with forced
 * routing (forward.h): in each MoE layer it forces (layers=, default all), each patch whose
 * centre falls in view F (rs_view_match against F; with base:view=V the geometry is V's)
 * runs the experts F ran there (F's executed ids; with a capacity, those F dropped stay
 * dropped), the class token and unmatched patches their own;
 * the store records the router's own top-R as always and the experts that ran.
 *
 * Identity and resumption: a run is identified by model sha256, data, slice, protocol,
 * view specs and seed. Asking for an identical run that finished reports it and computes
 * nothing; one that did not finish (killed, interrupted, failed) is resumed where its
 * last committed batch ended.
 *
 * Determinism: views depend only on (seed, image, view); each view of a batch is one
 * forward call; batches hold a multiple of the forward's group size G (the requested
 * batch is rounded up) and start at multiples of it, so the stored records are
 * bit-identical for any thread count and any batch size, and after any resume.
 *
 * Dispatch: with a capacity factor (dispatch.h, docs/dispatch.md) every MoE layer dispatches
 * groups of group_images consecutive images of the run (the last group holds what remains),
 * the forward's groups hold whole dispatch groups (model/group.h), batches and shards are
 * whole groups, and the store records which choices were kept. With a group seed the
 * dispatch groups are drawn from shuffled windows of images instead (group_order.h);
 * batches and shards are then whole windows and whole groups (rs_group_batch_unit). The settings are part of the
 * run's identity.
 *
 * Shards: with shard_count, the run covers only the shard's images (shard.h) and records
 * the job's identity and its shard, so that merge.h can join the shards into the job's run;
 * a shard's records are bit-identical to the whole job's records for the same images.
 *
 * One writer: a replay holds an exclusive flock on the database file while it runs; a
 * second replay into the same database fails at once with a clear message.
 *
 * Interruption: when *STOP becomes non-zero (a SIGINT handler sets it) the current batch
 * is finished and committed, the run is marked interrupted, and rs_replay returns with
 * summary->interrupted set. Errors mark the run failed with the message; nothing of the
 * failing batch is stored. The engine never prints: progress goes through a callback. */
#ifndef RS_REPLAY_H
#define RS_REPLAY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "dispatch.h"
#include "gemm.h"
#include "rs_error.h"
#include "store/store.h"

/* DONE of TOTAL images recorded, THIS_CALL of them in SECONDS by this call. */
typedef void (*rs_replay_progress)(void *ctx, int done, int total, int this_call, double seconds);

typedef struct rs_replay_options {
    const char *db_path;
    int64_t resume_run;          /* > 0: continue this run; model and data come from it;
                                    the database must exist */
    const char *model_path;      /* with resume_run may be NULL (the stored path is used) */
    const char *data;
    int offset, limit;           /* slice; limit <= 0 means to the end */
    const char *protocol;        /* pair | noise | custom | adversarial | intervene | corruptions */
    const char *augment;         /* pair: view spec of both views, NULL = the PRC default */
    const char *views;           /* custom: specs separated by ';' */
    const char *attack, *eps;    /* adversarial: the pgd spec without eps and the list of eps
                                    (view.h, rs_protocol_views); NULL = the defaults */
    const char *corruptions, *severities; /* corruptions: the lists (view.h); NULL = defaults */
    uint64_t seed;
    int shard_index, shard_count; /* shard_count > 0: replay only shard shard_index of the job
                                    (the slice above) as its own run (shard.h); ignored with
                                    resume_run, which continues the stored run as it is */
    int threads, batch;
    rs_dispatch dispatch;        /* capacity_factor 0: none (the default); ignored with
                                    resume_run, which takes the run's own */
    bool dispatch_model;         /* take the dispatch in the model's config instead
                                    (RS_EINVAL when it has none) */
    long long group_tokens;      /* > 0 (--group-size): dispatch.group_images is this many
                                    tokens' worth of images (RS_EINVAL unless a multiple of
                                    the model's tokens per image; group_order.h) */
    bool has_group_seed;         /* shuffled group composition (group_order.h); needs a
                                    capacity factor (RS_EINVAL otherwise); ignored with
                                    resume_run, which takes the run's own */
    uint64_t group_seed;
    /* The forward pass's GEMM backend and precision (model/gemm.h), part of the run's identity
     * unless OpenBLAS f32; ignored with resume_run, which takes the run's own. */
    rs_gemm_backend gemm;
    rs_precision precision;
    rs_record_form record;       /* what the routing rows hold (store.h): FULL (the default)
                                    or TOPK, ids and gates only; ignored with resume_run,
                                    which keeps the run's own */
    const char *command, *version; /* provenance, stored with the run */
    rs_replay_progress progress; /* may be NULL */
    void *progress_ctx;
    volatile sig_atomic_t *stop; /* may be NULL */
} rs_replay_options;

typedef struct rs_replay_summary {
    int64_t run_id;
    bool already_done, resumed, interrupted;
    int images_total, images_done, images_this_call, views, layers, tokens, batch;
    int first_image;             /* the run's first source image (a shard's own slice) */
    int shard_index, shard_count; /* of the run (shard_count 0: not a shard) */
    long long records;           /* token records written by this call (image x view x layer x token) */
    long long unmatched;         /* patches without a match in view 0, this call */
    double seconds;
    double store_seconds;        /* of which writing to SQLite */
    double decode_seconds;       /* of which decoding and fitting images */
    double forward_seconds;      /* of which the forward pass (attacks' reference passes included) */
    double attack_seconds;       /* of which attacks (their forward + backward passes) */
    long long db_bytes;          /* database file plus its WAL */
} rs_replay_summary;

int rs_replay(const rs_replay_options *opt, rs_replay_summary *summary, rs_error *err);

#endif
