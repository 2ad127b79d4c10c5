/* outdir.h — a report folder replaced as a whole, never left half written.
 *
 * A report is written into a temporary folder beside its target and swapped in when
 * complete, so a killed `report` leaves the previous report (or no folder) at the target,
 * never a finished-looking index.html beside a truncated PDF or old figures mixed with
 * new tables. A killed run may leave its temporary folder ".NAME.tmp-XXXXXX" beside the
 * target; nothing reads it, and it may be deleted.
 *
 * Every folder made here holds the marker file RS_OUTDIR_MARKER. A target that exists
 * must be a folder that is empty or carries the marker: replacing would delete whatever
 * else is in it, so a non-empty folder without the marker is refused.
 *
 *   rs_outdir_begin   checks the target, makes the temporary folder (with the marker)
 *   rs_outdir_commit  swaps it in: renameat2(RENAME_EXCHANGE) with an existing target, or,
 *                     where the file system cannot exchange, renames the old folder aside
 *                     and the new one into place; then removes the old report
 *   rs_outdir_abort   removes the temporary folder (after a failed write)
 * Errors (RS_EIO, RS_EINVAL for a refused target) name the folder; no function prints. */
#ifndef RS_OUTDIR_H
#define RS_OUTDIR_H

#include <limits.h>

#include "rs_error.h"

#define RS_OUTDIR_MARKER ".routerscope-report"

typedef struct rs_outdir {
    char target[PATH_MAX]; /* the folder the user named, without trailing slashes */
    char temp[PATH_MAX];   /* where to write, beside it */
} rs_outdir;

/* Checks TARGET and makes OD->temp; write the report there, then commit or abort. */
int rs_outdir_begin(const char *target, rs_outdir *od, rs_error *err);
/* Moves OD->temp to OD->target, replacing what was there, and removes the old folder. */
int rs_outdir_commit(rs_outdir *od, rs_error *err);
/* Removes OD->temp and everything in it. */
void rs_outdir_abort(rs_outdir *od);

#endif
