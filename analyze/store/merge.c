#include "merge.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

/* One input: its path and its shard run as stored. */
typedef struct shard_in {
    const char *path;
    rs_run_info info;
} shard_in;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The shard run of IN (the file's only one when IN->run_id is 0) into *INFO. */
static int find_shard_run(rs_store *store, const rs_merge_shard *in, rs_run_info *info, rs_error *err)
{
    if (in->run_id > 0) {
        int rc = rs_store_get_run(store, in->run_id, info, err);
        if (!rc && info->shard_count < 1)
            rc = rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 " is not a shard run (replay --shard I/N)",
                              in->path, in->run_id);
        return rc;
    }
    rs_run_info *runs;
    int count, found = 0;
    int rc = rs_store_list_runs(store, &runs, &count, err);
    if (rc)
        return rc;
    for (int i = 0; i < count; i++) {
        if (runs[i].shard_count > 0 && found++ == 0) {
            *info = runs[i];
            memset(&runs[i], 0, sizeof runs[i]); /* INFO owns its strings now */
        }
        rs_run_info_clear(&runs[i]);
    }
    free(runs);
    if (found == 1)
        return 0;
    rs_run_info_clear(info);
    return found == 0 ? rs_error_set(err, RS_EINVAL, "%s: holds no shard run (write one with replay --shard I/N)",
                                     in->path)
                      : rs_error_set(err, RS_EINVAL, "%s: holds %d shard runs; merge takes one per file",
                                     in->path, found);
}

static int load_shards(const rs_merge_options *o, shard_in *in, rs_error *err)
{
    for (int i = 0; i < o->num_shards; i++) {
        rs_store *store;
        in[i].path = o->shards[i].path;
        int rc = rs_store_open(in[i].path, true, &store, err);
        if (!rc)
            rc = find_shard_run(store, &o->shards[i], &in[i].info, err);
        /* Every record there and sound, and the bytes those the shard finished with. */
        if (!rc && in[i].info.status == RS_RUN_DONE)
            rc = rs_store_check_run(store, in[i].info.id, err);
        rs_store_close(store);
        if (rc)
            return rc;
    }
    return 0;
}

/* "model 1a2b3c4d5e6f, fashion-mnist:test images 0..299, pair, seed 5": what tells jobs apart. */
static void describe_job(const rs_run_info *r, char *buf, size_t size)
{
    snprintf(buf, size, "model %.12s, %s images %d..%d, %s, seed %" PRIu64, r->model_sha256, r->data,
             r->job_offset, r->job_offset + r->job_count - 1, r->protocol, r->seed);
}

/* Same job, same N, each index once, all finished, slices end to end: else one line. BY_INDEX
 * (N entries) receives the input holding each shard. */
static int check_shards(shard_in *in, int n, int *by_index, rs_error *err)
{
    const rs_run_info *a = &in[0].info;
    int shards = a->shard_count;
    for (int i = 0; i < shards; i++)
        by_index[i] = -1;
    for (int i = 0; i < n; i++) {
        const rs_run_info *b = &in[i].info;
        if (strcmp(a->job_identity, b->job_identity)) {
            char da[160], db[160];
            describe_job(a, da, sizeof da);
            describe_job(b, db, sizeof db);
            return rs_error_set(err, RS_EINVAL, "%s and %s hold shards of different jobs (%s; %s)", in[0].path,
                                in[i].path, da, db);
        }
        if (b->shard_count != shards)
            return rs_error_set(err, RS_EINVAL, "%s is shard %d/%d but %s is shard %d/%d: shards of one split wanted",
                                in[0].path, a->shard_index, shards, in[i].path, b->shard_index, b->shard_count);
        if (by_index[b->shard_index] >= 0)
            return rs_error_set(err, RS_EINVAL, "%s and %s both hold shard %d/%d (overlapping shards)",
                                in[by_index[b->shard_index]].path, in[i].path, b->shard_index, shards);
        by_index[b->shard_index] = i;
    }
    for (int i = 0; i < n; i++) {
        const rs_run_info *b = &in[i].info;
        static const char *const status[] = {"running or killed", "done", "failed", "interrupted"};
        if (b->status != RS_RUN_DONE)
            return rs_error_set(err, RS_EINVAL,
                                "%s: shard %d/%d is not finished (%s, %d of %d images); resume it with: "
                                "routerscope replay --db %s --resume %" PRId64,
                                in[i].path, b->shard_index, shards, status[b->status], b->images_done, b->count,
                                in[i].path, b->id);
    }
    int next = a->job_offset;
    for (int s = 0; s < shards; s++) {
        if (by_index[s] < 0)
            return rs_error_set(err, RS_EINVAL, "shard %d/%d is missing (given %d of %d shards)", s, shards, n,
                                shards);
        const rs_run_info *b = &in[by_index[s]].info;
        if (b->offset != next)
            return rs_error_set(err, RS_EFORMAT, "%s: shard %d/%d starts at image %d, its predecessor ends at %d",
                                in[by_index[s]].path, s, shards, b->offset, next - 1);
        next = b->offset + b->count;
    }
    if (next != a->job_offset + a->job_count)
        return rs_error_set(err, RS_EFORMAT, "%s: the shards end at image %d, the job at %d", in[0].path, next - 1,
                            a->job_offset + a->job_count - 1);
    return 0;
}

/* Merging a file into itself would read the rows it writes. */
static int check_distinct(const rs_merge_options *o, rs_error *err)
{
    struct stat out, st;
    if (stat(o->db_path, &out) != 0)
        return 0;
    for (int i = 0; i < o->num_shards; i++)
        if (stat(o->shards[i].path, &st) == 0 && st.st_dev == out.st_dev && st.st_ino == out.st_ino)
            return rs_error_set(err, RS_EINVAL, "%s: is the output and a shard; merge into another file",
                                o->db_path);
    return 0;
}

/* The output as this merge found it, so that a refused merge puts it back. */
typedef struct out_state {
    bool created_file;          /* the merge created the file */
    int64_t created_run;        /* the run the merge created, 0 when it continued one */
    int images_before;          /* the images the merged run held when the merge began */
} out_state;

/* Copies the shards, in order, from where the merged run stands, then marks it done (which
 * checks the merged run whole, rs_store_set_status). */
static int copy_shards(const rs_merge_options *o, rs_store *out, const shard_in *in, const int *by_index,
                       rs_merge_summary *sum, out_state *state, rs_error *err)
{
    rs_run_info run = {0};
    int rc = rs_store_get_run(out, sum->run_id, &run, err);
    int next = run.offset + run.images_done, batch = o->batch > 0 ? o->batch : 256;
    state->images_before = run.images_done;
    rs_run_info_clear(&run);
    for (int s = 0; !rc && s < in[0].info.shard_count; s++) {
        const shard_in *sh = &in[by_index[s]];
        int last = sh->info.offset + sh->info.count - 1;
        if (last < next)
            continue;
        int first = next > sh->info.offset ? next : sh->info.offset;
        rc = rs_store_copy_images(out, sum->run_id, sh->path, sh->info.id, first, last, batch, err);
        sum->images_copied += last - first + 1;
        next = last + 1;
    }
    return rc ? rc : rs_store_set_status(out, sum->run_id, RS_RUN_DONE, NULL, err);
}

/* After a refusal: what this merge wrote goes again, so that it leaves no run of its own
 * behind. A file it created is removed (with its WAL and index); in a store that was there,
 * the run it created is deleted, and a run it continued (a killed merge's) keeps only the
 * images it held before, as the next merge expects. Closes OUT. */
static void undo_merge(const rs_merge_options *o, rs_store *out, int64_t run_id, const out_state *state)
{
    if (!state->created_file && run_id > 0) {
        rs_error ignored;
        rs_store_undo_merge(out, run_id, state->created_run == run_id, state->images_before, &ignored);
    }
    rs_store_close(out);
    if (!state->created_file)
        return;
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char path[4096];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", o->db_path, suffixes[i]);
        unlink(path);
    }
}

int rs_merge(const rs_merge_options *o, rs_merge_summary *sum, rs_error *err)
{
    memset(sum, 0, sizeof *sum);
    double t0 = now();
    if (o->num_shards < 1)
        return rs_error_set(err, RS_EINVAL, "%s: no shard stores to merge", o->db_path);
    shard_in *in = calloc((size_t)o->num_shards, sizeof *in);
    if (!in)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    int *by_index = NULL, lock_fd = -1, rc = check_distinct(o, err);
    if (!rc)
        rc = load_shards(o, in, err);
    if (!rc && !(by_index = malloc(sizeof *by_index * (size_t)in[0].info.shard_count)))
        rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    if (!rc)
        rc = check_shards(in, o->num_shards, by_index, err);
    rs_store *out = NULL;
    struct stat before;
    out_state state = {0};
    if (!rc) {
        state.created_file = stat(o->db_path, &before) != 0;
        rc = rs_store_lock_file(o->db_path, true, &lock_fd, err);
    }
    if (!rc)
        rc = rs_store_open(o->db_path, false, &out, err);
    rs_run_status status = RS_RUN_RUNNING;
    if (!rc)
        rc = rs_store_begin_merge(out, in[by_index[0]].path, in[by_index[0]].info.id, o->command, o->version,
                                  &sum->run_id, &status, &state.created_run, err);
    if (!rc) {
        sum->shards = o->num_shards;
        sum->images = in[0].info.job_count;
        sum->already_done = status == RS_RUN_DONE;
        if (!sum->already_done)
            rc = copy_shards(o, out, in, by_index, sum, &state, err);
    }
    if (rc && lock_fd >= 0) /* the lock is ours: so is what the output holds */
        undo_merge(o, out, sum->run_id, &state);
    else
        rs_store_close(out);
    if (lock_fd >= 0)
        close(lock_fd); /* after SQLite: see rs_store_lock_file */
    for (int i = 0; i < o->num_shards; i++)
        rs_run_info_clear(&in[i].info);
    free(in);
    free(by_index);
    sum->seconds = now() - t0;
    return rc;
}
