/* merge.h — combine the shard stores of one replay job into one store (`routerscope merge`,
 * and rank 0 at the end of an MPI replay).
 *
 * Every shard must be a finished shard run (`replay --shard I/N`) of the same job (equal job
 * identity: model sha256, data, slice, protocol, view specs, seed) and the same N, each
 * index 0 .. N-1 exactly once, and pass the store's run check (rs_store_check_run: every
 * record there and sound, and its records still hashing to the checksum written when the
 * shard finished, so that a flipped byte is found); otherwise rs_merge fails with one line
 * naming the file (and the run, image, view and layer), or the missing index, and writes
 * nothing. The merged run takes the job's identity, slice and
 * shapes; its samples, predictions and routing are the shards' rows copied byte for byte in
 * image order, so it holds exactly the records a single-process run of the job holds (the
 * shard rule, shard.h, makes those bit-identical), and everything computed from it is the
 * same. Only provenance (command line, version, times) differs.
 *
 * Streaming and durability: rows are copied by SQLite (ATTACH + INSERT ... SELECT) in
 * transactions of BATCH images, each advancing the merged run's images_done, so memory stays
 * bounded whatever the job's size and a killed merge leaves a run marked running (never
 * done) that the next merge (or replay) of the same job continues. The run is marked done
 * once every image is in and the merged run passes the check (rs_store_set_status). A merge
 * refused on the way leaves no run of its own behind: an output file it created is removed,
 * a run it created is deleted, a run it continued goes back to the images it held. The output
 * is flocked like a replay's.
 * Merging a job that is already done in the output reports it (already_done) and copies
 * nothing. No function prints. */
#ifndef RS_MERGE_H
#define RS_MERGE_H

#include <stdbool.h>
#include <stdint.h>

#include "rs_error.h"

typedef struct rs_merge_shard {
    const char *path;           /* a shard store */
    int64_t run_id;             /* its shard run, or 0: the file's only shard run */
} rs_merge_shard;

typedef struct rs_merge_options {
    const char *db_path;        /* the output store (created when missing) */
    const rs_merge_shard *shards;
    int num_shards;
    int batch;                  /* images per copy transaction; <= 0: 256 */
    const char *command, *version; /* provenance of the merged run */
} rs_merge_options;

typedef struct rs_merge_summary {
    int64_t run_id;             /* the merged run in db_path */
    bool already_done;
    int shards, images, images_copied;
    double seconds;
} rs_merge_summary;

int rs_merge(const rs_merge_options *opt, rs_merge_summary *summary, rs_error *err);

#endif
