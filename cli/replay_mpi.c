/* replay_mpi.c — `routerscope replay` under mpirun / srun: rank I of N replays shard I/N
 * into a store of its own beside --db (or in --shard-dir, on node-local disk), and rank 0
 * merges the shards into --db; with --shard-dir the other ranks first send their finished
 * stores to rank 0 over MPI.
 *
 * Why every rank sends under --shard-dir, rather than only those whose files rank 0 cannot
 * see: seeing cannot be decided from (hostname, path). The same path names different disks
 * on different nodes, and a path rank 0 can open may hold a stale store from another run;
 * sending is always right and costs one copy of a file that is a small part of the replay.
 * Without --shard-dir every store is beside --db, where rank 0 reads it, as before.
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
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef RS_HAVE_MPI
#include <mpi.h>
#endif

#include "cli.h"
#include "store/merge.h"
#include "replay/replay.h"
#include "store/store.h"

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

/* The shard transfer (--shard-dir): rank 0 sends GO to one rank at a time, which answers
 * with its store in DATA messages of at most CHUNK_BYTES, then END (the byte count) or FAIL
 * (one line). One rank at a time and fixed-size chunks bound memory on both sides. */
enum { TAG_GO = 1, TAG_DATA, TAG_END, TAG_FAIL };
#define CHUNK_BYTES (4 << 20)

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

/* Rank 0: 0 when every rank finished its shard; else prints the first failing rank's message
 * (or the interruption) in one line and returns the exit status. */
static int check_ranks(const rank_result *all, int ranks)
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
    return RS_EXIT_OK;
}

/* Rank 0: merges the shard stores at PATHS (rank r's at PATHS + r * 4096) into DB.
 * RECEIVED: bytes received over MPI in SECONDS (0: none), for the summary line. */
static int merge_on_root(const rs_replay_options *o, const char *db, const rank_result *all, int ranks,
                         const char *paths, int64_t received, double seconds)
{
    rs_merge_shard *shards = calloc((size_t)ranks, sizeof *shards);
    if (!shards) {
        fprintf(stderr, "routerscope: out of memory\n");
        return RS_EXIT_FAIL;
    }
    for (int r = 0; r < ranks; r++)
        shards[r] = (rs_merge_shard){.path = paths + (size_t)r * 4096, .run_id = all[r].run_id};
    print_replay_line(all, ranks);
    rs_merge_options m = {.db_path = db, .shards = shards, .num_shards = ranks, .command = o->command,
                          .version = o->version};
    rs_merge_summary s;
    rs_error err;
    int rc = rs_merge(&m, &s, &err);
    free(shards);
    if (rc)
        return rs_cli_fail(&err);
    char transfer[96] = "";
    if (received)
        snprintf(transfer, sizeof transfer, "received %.1f MB in %.2f s, ", received / 1e6, seconds);
    printf("run %" PRId64 ": %d ranks, %d images %s %s (%smerge %.2f s)\n", s.run_id, ranks, s.images,
           s.already_done ? "already complete in" : "merged into", db, transfer, s.seconds);
    return RS_EXIT_OK;
}

/* This rank's shard store: DB.shard-I-of-N beside DB, or in SHARD_DIR ("%r" = the rank),
 * created when missing (its parent must exist). */
static int shard_store_path(const char *db, const char *shard_dir, int rank, int ranks, char *out, size_t size,
                            rs_error *err)
{
    if (!shard_dir) {
        snprintf(out, size, "%s.shard-%d-of-%d", db, rank, ranks);
        return 0;
    }
    char dir[4096];
    size_t n = 0;
    const char *c = shard_dir;
    for (; *c && n < sizeof dir - 16; c++) {
        if (c[0] == '%' && c[1] == 'r')
            n += (size_t)snprintf(dir + n, sizeof dir - n, "%d", rank), c++;
        else
            dir[n++] = *c;
    }
    dir[n] = '\0';
    if (*c)
        return rs_error_set(err, RS_EINVAL, "--shard-dir: the folder's path is too long");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return rs_error_set(err, RS_EIO, "--shard-dir %s: cannot create the folder: %s", dir, strerror(errno));
    const char *base = strrchr(db, '/');
    if ((size_t)snprintf(out, size, "%s/%s.shard-%d-of-%d", dir, base ? base + 1 : db, rank, ranks) >= size)
        return rs_error_set(err, RS_EINVAL, "--shard-dir %s: the shard store's path is too long", dir);
    return 0;
}

/* Folds PATH's WAL into its main file (store.h), so that the file alone is the store. 0,
 * or one line in MSG. */
static int checkpoint(const char *path, char *msg, size_t size)
{
    rs_error err = {0};
    if (rs_store_checkpoint_file(path, &err) == 0)
        return 0;
    snprintf(msg, size, "%s", err.msg);
    return -1;
}

/* Rank > 0, after rank 0's GO: sends the shard store at PATH (see the tags above). */
static void send_shard(const char *path)
{
    char msg[512] = "";
    int fd = -1;
    if (checkpoint(path, msg, sizeof msg) == 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        snprintf(msg, sizeof msg, "%.400s: cannot open: %s", path, strerror(errno));
    char *buf = fd >= 0 ? malloc(CHUNK_BYTES) : NULL;
    if (fd >= 0 && !buf)
        snprintf(msg, sizeof msg, "out of memory for the transfer of %.400s", path);
    int64_t total = 0;
    while (buf) {
        ssize_t n = read(fd, buf, CHUNK_BYTES);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            snprintf(msg, sizeof msg, "%.400s: cannot read: %s", path, strerror(errno));
        if (n <= 0)
            break;
        MPI_Send(buf, (int)n, MPI_BYTE, 0, TAG_DATA, MPI_COMM_WORLD);
        total += n;
    }
    if (msg[0])
        MPI_Send(msg, (int)strlen(msg), MPI_BYTE, 0, TAG_FAIL, MPI_COMM_WORLD);
    else
        MPI_Send(&total, (int)sizeof total, MPI_BYTE, 0, TAG_END, MPI_COMM_WORLD);
    free(buf);
    if (fd >= 0)
        close(fd);
}

static bool write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return false;
        buf += w, n -= (size_t)w;
    }
    return true;
}

/* Rank 0: receives rank R's shard store into PATH (BUF holds CHUNK_BYTES), adding its size
 * to *BYTES. 0, or one line "rank I of N: ..." in MSG. R's whole stream is received even
 * after a failed write, so that R never blocks in a send. */
static int receive_shard(int r, int ranks, const char *path, char *buf, int64_t *bytes, char *msg, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        snprintf(msg, size, "rank 0 of %d: cannot write %s (rank %d's shard store): %s", ranks, path, r,
                 strerror(errno));
    int64_t written = 0, total = -1;
    for (;;) {
        MPI_Status st;
        int n;
        MPI_Recv(buf, CHUNK_BYTES, MPI_BYTE, r, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
        MPI_Get_count(&st, MPI_BYTE, &n);
        if (st.MPI_TAG == TAG_DATA) {
            if (!msg[0] && !write_all(fd, buf, (size_t)n))
                snprintf(msg, size, "rank 0 of %d: cannot write %s (rank %d's shard store): %s", ranks, path, r,
                         strerror(errno));
            written += n;
            continue;
        }
        if (st.MPI_TAG == TAG_FAIL && !msg[0])
            snprintf(msg, size, "rank %d of %d: cannot send its shard store to rank 0: %.*s", r, ranks, n, buf);
        else if (st.MPI_TAG == TAG_END && n == (int)sizeof total)
            memcpy(&total, buf, sizeof total);
        break;
    }
    if (!msg[0] && total != written)
        snprintf(msg, size, "rank 0 of %d: received %" PRId64 " bytes of rank %d's shard store, not %" PRId64, ranks,
                 written, r, total);
    if (fd >= 0 && close(fd) != 0 && !msg[0])
        snprintf(msg, size, "rank 0 of %d: cannot write %s: %s", ranks, path, strerror(errno));
    *bytes += written;
    return msg[0] ? -1 : 0;
}

/* Removes a received copy and what SQLite may have left beside it. */
static void remove_copy(const char *path)
{
    char side[4096 + 8];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

/* Rank 0 with --shard-dir: receives every other rank's store into DB.shard-I-of-N.received
 * (STATUS != 0: tells them not to send), merges, removes the copies. The ranks' own shard
 * stores are never touched, so a failed transfer leaves everything a rerun needs. */
static int gather_and_merge(const rs_replay_options *o, const char *db, const rank_result *all, int ranks,
                            const char *own_path, int status)
{
    char *paths = calloc((size_t)ranks, 4096), *buf = status ? NULL : malloc(CHUNK_BYTES);
    char msg[768] = "";
    if (!status && (!paths || !buf))
        snprintf(msg, sizeof msg, "out of memory for the shard transfer");
    int received = 1;
    int64_t bytes = 0;
    double start = MPI_Wtime();
    for (int r = 1; r < ranks; r++) {
        int go = !status && !msg[0];
        MPI_Send(&go, 1, MPI_INT, r, TAG_GO, MPI_COMM_WORLD);
        if (!go)
            continue;
        snprintf(paths + (size_t)r * 4096, 4096, "%s.shard-%d-of-%d.received", db, r, ranks);
        received = r + 1;
        receive_shard(r, ranks, paths + (size_t)r * 4096, buf, &bytes, msg, sizeof msg);
    }
    if (!status && msg[0]) {
        fprintf(stderr, "routerscope: %s; every rank's shard store stays in place; rerun the same command to "
                        "merge\n", msg);
        status = RS_EXIT_FAIL;
    } else if (!status) {
        snprintf(paths, 4096, "%s", own_path);
        status = merge_on_root(o, db, all, ranks, paths, bytes, MPI_Wtime() - start);
    }
    for (int r = 1; paths && r < received; r++)
        remove_copy(paths + (size_t)r * 4096);
    free(buf);
    free(paths);
    return status;
}

/* Rank 0 without --shard-dir: every shard store is beside DB, where rank 0 reads it. */
static int merge_beside(const rs_replay_options *o, const char *db, const rank_result *all, int ranks)
{
    char *paths = calloc((size_t)ranks, 4096);
    if (!paths) {
        fprintf(stderr, "routerscope: out of memory\n");
        return RS_EXIT_FAIL;
    }
    for (int r = 0; r < ranks; r++)
        snprintf(paths + (size_t)r * 4096, 4096, "%s.shard-%d-of-%d", db, r, ranks);
    int status = merge_on_root(o, db, all, ranks, paths, 0, 0);
    free(paths);
    return status;
}

/* Replays this rank's shard into SHARD_DB; what rank 0 needs to know about it. */
static rank_result replay_shard(rs_replay_options *o, int rank, int ranks, const char *shard_db, int path_rc,
                                const rs_error *path_err)
{
    rank_result mine = {.rc = path_rc};
    if (path_rc) {
        snprintf(mine.msg, sizeof mine.msg, "%s", path_err->msg);
        return mine;
    }
    o->db_path = shard_db;
    o->shard_index = rank;
    o->shard_count = ranks;
    rs_replay_summary s;
    rs_error err = {0};
    mine.rc = rs_replay(o, &s, &err);
    mine.interrupted = s.interrupted;
    mine.run_id = s.run_id;
    mine.images = s.images_this_call;
    mine.seconds = s.seconds;
    mine.decode = s.decode_seconds;
    mine.forward = s.forward_seconds;
    mine.store = s.store_seconds;
    if (mine.rc)
        snprintf(mine.msg, sizeof mine.msg, "%s", err.msg);
    if (rank == 0 && o->progress && s.images_this_call)
        fputc('\n', stderr); /* ends the progress line */
    return mine;
}

int rs_cli_replay_mpi(rs_replay_options *o, bool threads_given, const char *shard_dir)
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
    if (rank != 0)
        o->progress = NULL; /* one progress line, rank 0's */
    const char *db = o->db_path;
    char shard_db[4096];
    rs_error path_err = {0};
    int path_rc = shard_store_path(db, shard_dir, rank, ranks, shard_db, sizeof shard_db, &path_err);
    rank_result mine = replay_shard(o, rank, ranks, shard_db, path_rc, &path_err);
    rank_result *all = rank == 0 ? calloc((size_t)ranks, sizeof *all) : NULL;
    MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        status = all ? check_ranks(all, ranks) : RS_EXIT_FAIL;
        if (shard_dir)
            status = gather_and_merge(o, db, all, ranks, shard_db, status);
        else if (!status)
            status = merge_beside(o, db, all, ranks);
        fflush(stdout);
    } else if (shard_dir) {
        int go = 0;
        MPI_Recv(&go, 1, MPI_INT, 0, TAG_GO, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (go)
            send_shard(shard_db);
    }
    free(all);
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return status;
}

#else

int rs_cli_replay_mpi(rs_replay_options *o, bool threads_given, const char *shard_dir)
{
    (void)o;
    (void)threads_given;
    (void)shard_dir;
    if (launched_ranks() < 2)
        return -1;
    fprintf(stderr, "routerscope: started by an MPI launcher with several ranks, but this routerscope was built "
                    "without MPI (rebuild with libopenmpi-dev installed, meson option -Dmpi=enabled)\n");
    return RS_EXIT_FAIL;
}

#endif
