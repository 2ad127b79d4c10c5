/* replay_mpi.c — `routerscope replay` under mpirun / srun: rank I of N replays shard I/N
 * into a store of its own beside --db, and rank 0 merges the shards into --db.
 *
 * Why rank 0 merges files instead of ranks streaming records to one writer: the shard
 * stores make every rank independent (no rank waits on another's SQLite commits), a rank
 * that dies loses only its batch in flight and resumes alone from its own file, and the
 * merge is one ATTACH + INSERT ... SELECT pass that costs a fraction of the replay (see
 * docs/scale-out.md for the measurement). A single writer would serialise every commit
 * through rank 0 and make resume depend on what rank 0 had received.
 *
 * Without MPI at build time only the launch check remains: started by mpirun with several
 * ranks, the binary refuses rather than letting N copies replay the whole job. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RS_HAVE_MPI
#include <mpi.h>
#endif

#include "cli.h"
#include "merge.h"
#include "replay.h"

/* The ranks the launcher announced (OpenMPI's mpirun, PMI/PMIx as srun sets them), or 0. */
static int launched_ranks(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0)
            return atoi(v);
    }
    return getenv("PMIX_RANK") ? 2 : 0; /* PMIx without a size: let MPI tell */
}

#ifdef RS_HAVE_MPI

/* What each rank reports to rank 0. */
typedef struct rank_result {
    int rc, interrupted, images;  /* images replayed by this call */
    int64_t run_id;
    double seconds, decode, forward, store;
    char msg[256];
} rank_result;

/* The replay's rate over all ranks (wall time: the slowest rank) and the mean shares. */
static void print_replay_line(const rank_result *all, int ranks)
{
    int images = 0;
    double wall = 0, decode = 0, forward = 0, store = 0;
    for (int r = 0; r < ranks; r++) {
        images += all[r].images;
        wall = all[r].seconds > wall ? all[r].seconds : wall;
        double t = all[r].seconds > 0 ? all[r].seconds : 1e-9;
        decode += all[r].decode / t / ranks;
        forward += all[r].forward / t / ranks;
        store += all[r].store / t / ranks;
    }
    if (images)
        printf("replay: %d images on %d ranks in %.1f s (%.0f images/s; mean over ranks: decode %.0f%%, "
               "forward %.0f%%, SQLite %.0f%%)\n",
               images, ranks, wall, images / (wall > 0 ? wall : 1e-9), 100 * decode, 100 * forward, 100 * store);
}

/* Rank 0: the first failing rank's message (one line), else the merge of all shards. */
static int finish_on_root(const rs_replay_options *o, const char *db, const rank_result *all, int ranks)
{
    int failed = 0, first = -1, interrupted = 0;
    for (int r = 0; r < ranks; r++) {
        if (all[r].rc && first < 0)
            first = r;
        failed += all[r].rc != 0;
        interrupted += all[r].interrupted;
    }
    if (first >= 0) {
        fprintf(stderr, "routerscope: rank %d of %d: %s", first, ranks, all[first].msg);
        if (failed > 1)
            fprintf(stderr, " (and %d more ranks failed)", failed - 1);
        fprintf(stderr, "; rerun the same command to resume\n");
        return RS_EXIT_FAIL;
    }
    if (interrupted) {
        fprintf(stderr, "routerscope: interrupted (%d of %d ranks); rerun the same command to resume\n",
                interrupted, ranks);
        return 130;
    }
    size_t n = ranks > 0 ? (size_t)ranks : 1;
    rs_merge_shard *shards = calloc(n, sizeof *shards);
    char *paths = calloc(n, 4096);
    if (!shards || !paths) {
        free(shards);
        free(paths);
        fprintf(stderr, "routerscope: out of memory\n");
        return RS_EXIT_FAIL;
    }
    for (int r = 0; r < ranks; r++) {
        snprintf(paths + (size_t)r * 4096, 4096, "%s.shard-%d-of-%d", db, r, ranks);
        shards[r] = (rs_merge_shard){.path = paths + (size_t)r * 4096, .run_id = all[r].run_id};
    }
    print_replay_line(all, ranks);
    rs_merge_options m = {.db_path = db, .shards = shards, .num_shards = ranks, .command = o->command,
                          .version = o->version};
    rs_merge_summary s;
    rs_error err;
    int rc = rs_merge(&m, &s, &err);
    free(shards);
    free(paths);
    if (rc)
        return rs_cli_fail(&err);
    printf("run %" PRId64 ": %d ranks, %d images %s %s (merge %.2f s)\n", s.run_id, ranks, s.images,
           s.already_done ? "already complete in" : "merged into", db, s.seconds);
    return RS_EXIT_OK;
}

int rs_cli_replay_mpi(rs_replay_options *o, bool threads_given)
{
    if (launched_ranks() == 0)
        return -1;
    int ranks, rank;
    MPI_Init(NULL, NULL);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (ranks < 2) {
        MPI_Finalize();
        return -1; /* one rank: an ordinary replay */
    }
    int status;
    if (o->resume_run || o->shard_count) {
        status = rank == 0 ? rs_cli_usage_error("replay", "under mpirun each rank replays its own shard; "
                                                          "give neither --shard nor --resume (rerun the same "
                                                          "command to resume)")
                           : RS_EXIT_USAGE;
        MPI_Finalize();
        return status;
    }
    MPI_Comm local;
    int local_ranks = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &local_ranks);
        MPI_Comm_free(&local);
    }
    if (!threads_given) {
        int per_rank = rs_cli_default_threads() / local_ranks;
        o->threads = per_rank > 0 ? per_rank : 1;
    }
    const char *db = o->db_path;
    char shard_db[4096];
    snprintf(shard_db, sizeof shard_db, "%s.shard-%d-of-%d", db, rank, ranks);
    o->db_path = shard_db;
    o->shard_index = rank;
    o->shard_count = ranks;
    if (rank != 0)
        o->progress = NULL; /* one progress line, rank 0's */

    rs_replay_summary s;
    rs_error err = {0};
    rank_result mine = {.rc = rs_replay(o, &s, &err)};
    mine.interrupted = s.interrupted;
    mine.run_id = s.run_id;
    mine.images = s.images_this_call;
    mine.seconds = s.seconds;
    mine.decode = s.decode_seconds;
    mine.forward = s.forward_seconds;
    mine.store = s.store_seconds;
    if (mine.rc)
        snprintf(mine.msg, sizeof mine.msg, "%s", err.msg);
    rank_result *all = rank == 0 ? calloc((size_t)ranks, sizeof *all) : NULL;
    MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        if (o->progress && s.images_this_call)
            fputc('\n', stderr);
        status = all ? finish_on_root(o, db, all, ranks) : RS_EXIT_FAIL;
        fflush(stdout);
    }
    free(all);
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return status;
}

#else

int rs_cli_replay_mpi(rs_replay_options *o, bool threads_given)
{
    (void)o;
    (void)threads_given;
    if (launched_ranks() < 2)
        return -1;
    fprintf(stderr, "routerscope: started by an MPI launcher with several ranks, but this routerscope was built "
                    "without MPI (rebuild with libopenmpi-dev installed, meson option -Dmpi=enabled)\n");
    return RS_EXIT_FAIL;
}

#endif
