/* status.c — a run's status (contract in store.h): setting it, and marking a run done only
 * when its records pass the run check (check.c), with their checksum, in one transaction;
 * what readers say about a run that is not done or that recorded no softmax; the names of
 * the record forms. Apart from runs.c, which the check reads runs through, so that no file
 * calls back into the one that calls it. */
#include "store_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The UPDATE of rs_store_set_status, inside its transaction; CHECKSUM NULL clears it. */
static int update_status(rs_store *s, int64_t run_id, rs_run_status status, const char *error, const char *checksum,
                         rs_error *err)
{
    /* A run that stops (done, failed, interrupted) gets its finish time; one that resumes
     * loses it and any old error. The error text is kept for failed and interrupted runs. */
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "UPDATE runs SET status = ?, finished = ?, error = ?, checksum = ? WHERE id = ?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return store_db_fail(s, rc, "setting a run's status", err);
    sqlite3_bind_text(st, 1, store_status_name(status), -1, SQLITE_STATIC);
    if (status == RS_RUN_RUNNING)
        sqlite3_bind_null(st, 2);
    else
        sqlite3_bind_double(st, 2, store_now());
    if (status == RS_RUN_FAILED || status == RS_RUN_INTERRUPTED)
        sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, checksum, -1, SQLITE_STATIC); /* NULL binds NULL */
    sqlite3_bind_int64(st, 5, run_id);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store_db_fail(s, rc, "setting a run's status", err);
}

int rs_store_set_status(rs_store *store, int64_t run_id, rs_run_status status, const char *error,
                        rs_error *err)
{
    if (store->read_only)
        return store_read_only_fail(store, err);
    if ((int)status < 0 || status > RS_RUN_INTERRUPTED)
        return rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 ": unknown status %d", store->path, run_id,
                            (int)status);
    /* Under the write lock: the records checked are the records marked done. */
    int rc = store_run_cached(store, ST_BEGIN, "setting a run's status", err);
    if (rc)
        return rc;
    rs_run_info info = {0};
    char checksum[RS_STORE_CHECKSUM_SIZE];
    rc = rs_store_get_run(store, run_id, &info, err);
    if (!rc && status == RS_RUN_DONE && info.images_done != info.count)
        rc = rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 " holds %d of its %d images: not done", store->path,
                          run_id, info.images_done, info.count);
    rs_run_info_clear(&info);
    if (rc)
        goto fail;
    if ((status == RS_RUN_DONE && (rc = store_check_run(store, run_id, false, checksum, err))) ||
        (rc = update_status(store, run_id, status, error, status == RS_RUN_DONE ? checksum : NULL, err)) ||
        (rc = store_run_cached(store, ST_COMMIT, "setting a run's status", err)))
        goto fail;
    return 0;
fail:
    store_rollback(store);
    return rc;
}

bool rs_run_unfinished(const rs_run_info *info, char *buf, size_t size)
{
    static const char *const state[] = {"running or killed", "done", "failed", "interrupted"};
    if (info->status == RS_RUN_DONE)
        return false;
    snprintf(buf, size, "run %" PRId64 " is not finished (%s, %d of %d images done)", info->id,
             state[info->status], info->images_done, info->count);
    return true;
}

const char *rs_record_form_name(rs_record_form form)
{
    return form == RS_RECORD_TOPK ? "topk" : "full";
}

int rs_record_form_parse(const char *text, rs_record_form *form, rs_error *err)
{
    if (text && !strcmp(text, "full"))
        *form = RS_RECORD_FULL;
    else if (text && !strcmp(text, "topk"))
        *form = RS_RECORD_TOPK;
    else
        return rs_error_set(err, RS_EINVAL, "unknown record form '%s' (want full or topk)", text ? text : "");
    return 0;
}

bool rs_run_lacks_softmax(const rs_run_info *info, const char *metric, char *buf, size_t size)
{
    if (info->record != RS_RECORD_TOPK)
        return false;
    snprintf(buf, size, "run %" PRId64 " was recorded with --record topk: no softmax for %s", info->id, metric);
    return true;
}
