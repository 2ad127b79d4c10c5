/* store.h — the SQLite routing store: runs, views, samples and per-token routing.
 *
 * One database file, WAL journal, foreign keys on, schema version in PRAGMA user_version
 * (RS_STORE_SCHEMA); a file created since schema 8 has 16 KiB pages (db.c). Tables (see db.c for the DDL):
 *   models      one row per checkpoint (sha256 unique): path, config JSON, parameter count
 *   runs        one row per replay job: model, data source and slice, protocol, view specs,
 *               seed, identity (unique), status, images_total / images_done, shapes,
 *               provenance (command line, routerscope version and commit), times, error,
 *               dispatch settings (schema 4), group seed (schema 5), the checksum of its
 *               records, written when the run is marked done (schema 6; rs_store_check_run),
 *               and its record form (schema 7: 'topk', or NULL for full; rs_record_form)
 *   views       (run, view) -> spec text
 *   samples     (run, image) -> label
 *   predictions (run, image, view) -> predicted class, its probability, the view's drawn
 *               parameters (JSON, includes the affine map; since schema 8 groups of keys
 *               at their defaults are left out, view.h) and its patch match map (Np int16;
 *               since schema 8 an identity map is written as 0 bytes, record_check.h)
 *   routing     (run, image, view, layer) -> three BLOBs covering all T tokens:
 *               top_idx  T*R uint8   expert ids by decreasing gate
 *               top_gate T*R float32 little-endian, their probabilities
 *               probs    T*E float16 little-endian (IEEE half, model/half.h), the
 *                        full router softmax; 0 bytes in a run recorded with --record topk
 *                        (runs.record, schema 7)
 *               kept     T*R uint8 0/1 (schema 4): whether dispatch kept each choice;
 *                        NULL when the run has no capacity factor (every top-k choice ran).
 *                        Where the view forced the layer, a forced token's row is about
 *                        its forced choices (as the view it was forced from kept them)
 *               executed T*k uint8 (schema 5): the experts each token ran, by rank, where
 *                        the view forced that layer (a route: view, forward.h); NULL where
 *                        it did not (the router's top-k ran). Stores of schemas 1-4 read as
 *                        NULL everywhere
 *   attacks     (run, image, view) of attacked views (a pgd: operation, analyze/replay/attack.h) ->
 *               linf, l2 (the perturbation in [0,1] pixel units), steps and objective:
 *               (steps+1) float32 little-endian, the objective at each iterate (attack.h).
 *               Schema 4; stores of schemas 1-3 have no such table and read as no rows
 * "image" is the index in the data source (offset included), "layer" the MoE slot
 * (0 .. L-1; runs.layers maps slots to block indices). Tokens are in sequence order:
 * the class token first when the model has one (runs.has_cls), then patches in raster order.
 *
 * Durability: rs_store_write_batch writes a whole batch and the run's images_done in one
 * transaction, so a killed process loses at most the batch in flight and a resumed run
 * continues at images_done with nothing missing and nothing twice (primary keys forbid
 * duplicates in any case).
 *
 * Errors name the database file: opening a database of another schema version, a file
 * that is not SQLite, a read-only file (when writing) or a locked database (after a
 * 5 s busy timeout) fails with one clear line. No function prints or exits.
 * Ownership: rs_store_open allocates, rs_store_close releases (NULL allowed); close every
 * cursor before its store. Strings returned in rs_run_info live until the next call that
 * fills the same struct or rs_run_info_clear: a filling call frees what the struct held, so
 * zero an rs_run_info ({0}) before its first use. One rs_store serves one thread at a time. */
#ifndef RS_STORE_H
#define RS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rs_error.h"

#define RS_STORE_SCHEMA 8

/* What a run's routing rows hold (`replay --record`, runs.record, schema 7): FULL the top-R ids
 * and gates and the float16 softmax over all E experts; TOPK the ids and gates only, with an
 * empty (0-byte) probs BLOB, for stores at benchmark scale (docs/store.md, "Size"). Figures
 * that need the softmax (JSD, entropy, the PRC score, export --probs) are refused for a TOPK
 * run (rs_run_lacks_softmax). Zero is FULL: every run of an older store. */
typedef enum rs_record_form { RS_RECORD_FULL = 0, RS_RECORD_TOPK = 1 } rs_record_form;

/* "full" or "topk". */
const char *rs_record_form_name(rs_record_form form);
/* TEXT ("full" or "topk") into *FORM; RS_EINVAL otherwise. */
int rs_record_form_parse(const char *text, rs_record_form *form, rs_error *err);

typedef struct rs_store rs_store;

/* READ_ONLY: open an existing database for reading (stats, reports); otherwise create
 * the file and schema when missing. */
int rs_store_open(const char *path, bool read_only, rs_store **out, rs_error *err);
void rs_store_close(rs_store *store);

/* Moves everything in the WAL of the store at PATH into its main file and truncates the WAL,
 * so that the one file holds the whole store (to copy or send it). RS_EIO when the store is
 * busy or cannot be opened for writing. */
int rs_store_checkpoint_file(const char *path, rs_error *err);

/* What identifies and describes a run. Identity = model sha256 + data + offset + count +
 * protocol + view specs + seed. */
typedef struct rs_run_spec {
    const char *model_path, *model_sha256, *model_config; /* config as JSON text */
    const char *model_labels;   /* class names as a JSON array, or NULL */
    long long model_params;
    const char *data;           /* the --data spec */
    int offset, count;          /* slice of the source: images offset .. offset+count-1 */
    const char *protocol;       /* "pair", "noise" or "custom" */
    int num_views;
    const char *const *view_specs; /* num_views strings; view 0 is the reference */
    uint64_t seed;
    int fit_version;            /* the source's image fit (image.h); part of the identity
                                 * when above 1 */
    int num_layers;             /* MoE layers */
    const int *layer_blocks;    /* their block indices */
    int tokens, patches, grid_h, grid_w, record_k, num_experts, num_classes;
    int top_k;                  /* the model's k (record_k = max(2, k)) */
    int channels, image_h, image_w; /* the model's input */
    bool has_cls;
    const char *command;        /* the command line, for provenance */
    const char *version;        /* routerscope version and commit */
    /* A shard (shard_count > 0): shard shard_index of shard_count of the job whose slice is
     * job_offset .. job_offset+job_count-1; offset and count are then the shard's own slice
     * (analyze/replay/shard.h). The identity is the job's identity plus the shard. */
    int shard_index, shard_count, job_offset, job_count;
    /* Dispatch (model/dispatch.h): capacity_factor 0 = none, and then group_images and bpr
     * are 0. Part of the identity only when set, so runs without it keep theirs. */
    double capacity_factor;
    int group_images;
    bool bpr;
    /* Group composition (analyze/replay/group_order.h), only with a capacity factor: false = data
     * order; otherwise shuffled windows of group_seed (schema 5), part of the identity. */
    bool has_group_seed;
    uint64_t group_seed;
    /* The GEMM backend and precision ("onednn/f32", "onednn/bf16"; model/gemm.h): NULL for
     * OpenBLAS in float32, which every run before them used. Part of the identity only when
     * set, so earlier runs keep theirs and resume with OpenBLAS. */
    const char *compute;
    /* What the routing rows hold; part of the identity only when TOPK, so full runs keep
     * theirs (a topk run and a full run of one job are two runs). */
    rs_record_form record;
    /* vmoe's numerics (dispatch.h), only with a capacity factor: bfloat16 dispatch and a
     * padded last group. Part of the identity text only when set (no column: readers take
     * them from the stored identity, rs_run_info), so runs without them keep theirs. */
    bool bf16_dispatch, pad_last_group;
} rs_run_spec;

typedef enum rs_run_status { RS_RUN_RUNNING, RS_RUN_DONE, RS_RUN_FAILED, RS_RUN_INTERRUPTED } rs_run_status;

typedef struct rs_run_info {
    int64_t id;
    rs_run_status status;
    int images_total, images_done;
    /* The spec as stored (strings owned by the rs_run_info). */
    char *model_path, *model_sha256, *data, *protocol, *error, *command, *version;
    char **view_specs;
    int num_views, offset, count, num_layers, tokens, patches, grid_h, grid_w, record_k, num_experts,
        num_classes;
    int layer_blocks[64];
    int top_k;                  /* the model's k */
    int channels, image_h, image_w; /* the model's input; 0 when a schema-1 store's config
                                 * lacked them */
    char **class_names;         /* num_class_names names (the model's "labels"), or NULL */
    int num_class_names;
    bool has_cls;
    uint64_t seed;
    double started, finished;   /* Unix seconds; finished 0 while running */
    /* A shard run (shard_count > 0): its index, and the whole job's slice and identity
     * text (owned); shard_count 0 and job_identity NULL for an ordinary run. */
    int shard_index, shard_count, job_offset, job_count;
    char *job_identity;
    /* Dispatch: capacity_factor 0 (and group_images 0, bpr false) for a run without
     * capacity, and for every run of a store older than schema 4. */
    double capacity_factor;
    int group_images;
    bool bpr;
    /* Group composition: has_group_seed false (data order) without one, and for every run of
     * a store older than schema 5. */
    bool has_group_seed;
    uint64_t group_seed;
    /* The spec's compute as its identity holds it; "" for OpenBLAS float32. */
    char compute[32];
    /* What the routing rows hold: FULL for every run of a store older than schema 7. */
    rs_record_form record;
    /* bfloat16 dispatch and a padded last group (rs_run_spec), read from the run's identity;
     * false for every run without them. */
    bool bf16_dispatch, pad_last_group;
    /* The model's provenance from its stored config JSON (docs/checkpoint.md): "method"
     * (owned; NULL when absent or not a string of at most 31 bytes) and "train_seed" (-1
     * when absent). analyze/store/run.h's rs_run_method reads the method with its fallback. */
    char *method;
    long long train_seed;
} rs_run_info;

void rs_run_info_clear(rs_run_info *info);

/* Looks for a run with SPEC's identity: 1 and fills INFO when found, 0 when not. */
int rs_store_find_run(rs_store *store, const rs_run_spec *spec, rs_run_info *info, rs_error *err);
/* Inserts the model (once per sha256) and a new run with status running, 0 images done. */
int rs_store_begin_run(rs_store *store, const rs_run_spec *spec, int64_t *run_id, rs_error *err);
/* Loads run RUN_ID (for --resume, stats, reports). RS_EINVAL when there is none. */
int rs_store_get_run(rs_store *store, int64_t run_id, rs_run_info *info, rs_error *err);
/* Sets the status. The finish time is set when the run stops (done, failed, interrupted)
 * and cleared when it runs again; ERROR (may be NULL) is kept for failed and interrupted
 * runs and cleared otherwise. RS_EINVAL when there is no such run.
 * Done: in one transaction, the run must pass rs_store_check_run (all its images, every
 * record sound; RS_EFORMAT and the check's line otherwise, the status unchanged), and its
 * records' checksum is recorded; any other status clears the checksum. */
int rs_store_set_status(rs_store *store, int64_t run_id, rs_run_status status, const char *error,
                        rs_error *err);
/* The one check of a stored run, which every reader runs before it reads a run (rs_run_load,
 * analyze/store/run.h) and which a run passes before it is marked done (merge included):
 *   - the run row's shapes fit together; a done run holds all its images;
 *   - every key the run must hold is there, and no other: a samples row per image (offset ..
 *     offset + images_done - 1), a predictions row per image and view, a routing row per
 *     image, view and layer, an attacks row per image for each view that the first image has
 *     one for (same steps);
 *   - every record is sound: predicted class < K, its probability in [0, 1], match maps of Np
 *     int16 in -1 .. Np-1, routing rows as record_check.h says (BLOB sizes, expert ids < E,
 *     float16 probabilities finite and summing to 1 within 2^-10, gates equal to their
 *     experts' probabilities, kept and executed masks; a topk run's rows have an empty probs
 *     BLOB and gates in [0, 1] instead), kept in every row exactly when the
 *     run has a capacity factor, executed in a (view, layer) for every image or none, attack
 *     norms and objectives finite with steps + 1 values;
 *   - a done run whose checksum was recorded (schema 6) still has it: its records hash to the
 *     same XXH64, so a flipped byte anywhere in them is found.
 * 0 when it passes; else RS_EFORMAT with one line "DB: run R image I view V layer L: what"
 * (as much of the place as the fault has), RS_EINVAL when there is no such run. Reads in one
 * transaction; costs one pass over the run's rows (docs/store.md, "Checking a run"). */
int rs_store_check_run(rs_store *store, int64_t run_id, rs_error *err);

/* For a run that is not done: "run 3 is not finished (running or killed, 800 of 2000 images
 * done)" into BUF and true; false (BUF untouched) for a done run. What `export` and `report`
 * say about an unfinished run. */
bool rs_run_unfinished(const rs_run_info *info, char *buf, size_t size);

/* For a run recorded with --record topk: "run 3 was recorded with --record topk: no softmax
 * for METRIC" into BUF and true; false (BUF untouched) for a full run. What every reader of
 * the softmax (JSD, entropy, PRC score, export --probs) says instead of the figure. */
bool rs_run_lacks_softmax(const rs_run_info *info, const char *metric, char *buf, size_t size);

/* All runs, oldest first; *RUNS is an owned array of *COUNT entries (free each with
 * rs_run_info_clear, then the array with free). */
int rs_store_list_runs(rs_store *store, rs_run_info **runs, int *count, rs_error *err);

/* One batch of replayed images, all arrays packed in the order (image, view, layer,
 * token, ...). V views, L layers, T tokens, R record_k, E experts, Np patches. */
typedef struct rs_batch {
    int first;                  /* source index of the first image */
    int count;                  /* images in the batch */
    int num_views, num_layers, tokens, record_k, num_experts, patches;
    const int32_t *labels;      /* (count) -1 when unknown; NULL: all unknown */
    const int32_t *predicted;   /* (count, V) */
    const float *pred_prob;     /* (count, V) softmax probability of the predicted class */
    const char *const *view_params; /* (count, V) JSON text */
    const int16_t *match;       /* (count, V, Np) reference patch matched by each patch, -1 none */
    const int32_t *top_idx;     /* (count, V, L, T, R) */
    const float *top_gate;      /* (count, V, L, T, R) */
    const float *probs;         /* (count, V, L, T, E), stored as float16; not read (may be
                                   NULL) when the run records topk */
    const uint8_t *kept;        /* (count, V, L, T, R) 0/1, or NULL when the run has no capacity */
    /* Forced routing (route: views); executed NULL when no view of the run forces a layer. */
    int top_k;                  /* the model's k: executed rows are k wide */
    const uint8_t *forced;      /* (V, L) 1 where view v forces MoE layer l */
    const int32_t *executed;    /* (count, V, L, T, top_k) the experts each token ran */
    /* Attacked views; attack_steps NULL when no view of the run has an attack. */
    const int *attack_steps;    /* (V) the attack's steps, 0 for a view without one */
    int attack_stride;          /* objective values per (image, view): >= max steps + 1 */
    const float *attack_linf;   /* (count, V) */
    const float *attack_l2;     /* (count, V) */
    const float *attack_objective; /* (count, V, attack_stride), the first steps+1 used */
} rs_batch;

/* Writes BATCH and sets the run's images_done to BATCH->first + count - offset, in one
 * transaction. The batch must start where the run stands (images_done), else RS_EINVAL. */
int rs_store_write_batch(rs_store *store, int64_t run_id, const rs_batch *batch, rs_error *err);

/* Merging shard stores (analyze/store/merge.h drives these).
 * rs_store_begin_merge: finds in STORE the run with the job identity of shard run
 * SHARD_RUN of the store file SHARD_PATH, or creates it (status running, nothing done) by
 * copying the shard's model, run row and views with the job's slice and identity and the
 * given provenance. *RUN_ID is the run; *STATUS its status (done: merged already); *CREATED
 * the run when this call created it, else 0.
 * rs_store_copy_images: copies images FIRST .. LAST (source indices) of SHARD_RUN from
 * SHARD_PATH into run RUN_ID — samples, predictions, routing and attacks byte for byte — in
 * transactions of at most BATCH images, each advancing the run's images_done; the copy
 * must start where the run stands (RS_EINVAL otherwise). SQLite streams the rows, so memory
 * does not grow with the run. */
int rs_store_begin_merge(rs_store *store, const char *shard_path, int64_t shard_run, const char *command,
                         const char *version, int64_t *run_id, rs_run_status *status, int64_t *created,
                         rs_error *err);
int rs_store_copy_images(rs_store *store, int64_t run_id, const char *shard_path, int64_t shard_run, int first,
                         int last, int batch, rs_error *err);

/* Takes back what a refused merge wrote into run RUN_ID: with CREATED the whole run, with
 * everything it recorded and its model row when no other run uses it; else the images it
 * copied, those from the IMAGES-th of the run's slice on (images_done back to IMAGES). */
int rs_store_undo_merge(rs_store *store, int64_t run_id, bool created, int images, rs_error *err);

/* Reading the attacks table, in (image, view) order, for images FIRST .. LAST (source
 * indices; INT_MIN, INT_MAX for all). A store of schema 1-3 yields no rows. */
typedef struct rs_attack_row {
    int image, view, steps;
    float linf, l2;
    const float *objective;     /* (steps + 1), valid until the next call */
} rs_attack_row;

typedef struct rs_store_attack_cursor rs_store_attack_cursor;
int rs_store_attack_cursor_open(rs_store *store, int64_t run_id, int first, int last, rs_store_attack_cursor **out,
                                rs_error *err);
/* 1 and fills ROW, 0 at the end, negative on error (RS_EFORMAT for a malformed row). */
int rs_store_attack_cursor_next(rs_store_attack_cursor *cursor, rs_attack_row *row, rs_error *err);
void rs_store_attack_cursor_close(rs_store_attack_cursor *cursor);

/* Takes an exclusive flock on PATH (created empty when CREATE and missing, which SQLite
 * accepts as a new database) so that one process at a time writes a store; *FD holds the
 * lock until closed (close it only after the store: closing any descriptor of the file
 * drops SQLite's POSIX locks on it). The lock dies with the process. */
int rs_store_lock_file(const char *path, bool create, int *fd, rs_error *err);

/* Reading, streamed in (image, view, layer) order without loading the run at once. */
typedef struct rs_routing_record {
    int image, view, layer;
    int label, predicted;       /* of this image / view */
    float pred_prob;
    const int16_t *match;       /* (Np) of this view */
    const uint8_t *top_idx;     /* (T, R) */
    const float *top_gate;      /* (T, R) */
    const float *probs;         /* (T, E), widened from float16; NULL in a topk run */
    const uint8_t *kept;        /* (T, R) 0/1 kept by dispatch, or NULL: no capacity (every
                                   top-k choice ran; also every record of a store before schema 4) */
    const uint8_t *executed;    /* (T, R) what ran: where the view forced this layer, the first k
                                   ranks of each token are the experts it ran and the others its
                                   router's; elsewhere the very pointer top_idx (what ran is the
                                   router's top-k). kept applies to these ids */
    bool forced;                /* the view forced this layer (executed != top_idx) */
} rs_routing_record;

typedef struct rs_store_cursor rs_store_cursor;
int rs_store_cursor_open(rs_store *store, int64_t run_id, rs_store_cursor **out, rs_error *err);
/* The same, for the records of images FIRST .. LAST (source indices) only. */
int rs_store_cursor_open_images(rs_store *store, int64_t run_id, int first, int last, rs_store_cursor **out,
                                rs_error *err);
/* 1 and fills REC (pointers valid until the next call), 0 at the end, negative on error. */
int rs_store_cursor_next(rs_store_cursor *cursor, rs_routing_record *rec, rs_error *err);
void rs_store_cursor_close(rs_store_cursor *cursor);

#endif
