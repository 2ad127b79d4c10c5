/* outdir.c — a report folder replaced as a whole (outdir.h). */
#include "outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char marker_text[] =
    "This folder is a routerscope report: `routerscope report` replaces it as a whole.\n";

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

/* Removes PATH and everything under it (links are removed, not followed). */
static int remove_tree(const char *path)
{
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* 1 when the folder DIR holds nothing but the marker may be replaced: it is empty or
 * carries the marker. -1 when it cannot be read (errno set). */
static int replaceable(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int entries = 0, marker = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        entries++;
        marker |= !strcmp(e->d_name, RS_OUTDIR_MARKER);
    }
    closedir(d);
    return entries == 0 || marker;
}

/* Makes the folder PATH, whose name ends in "XXXXXX", with those six letters made unique
 * (as mkdtemp does) but by mkdir with mode 0777: the umask then gives the report the
 * permissions of any folder the user makes, where mkdtemp's 0700 would hide it from the
 * group and from a web server. -1 with errno set when no name could be made. */
static int make_temp_dir(char *path)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char *x = path + strlen(path) - 6;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t state = ((uint64_t)getpid() << 32) ^ (uint64_t)now.tv_sec ^ ((uint64_t)now.tv_nsec << 16);
    for (int attempt = 0; attempt < 100; attempt++) {
        for (int i = 0; i < 6; i++) {
            state = state * 6364136223846793005u + 1442695040888963407u; /* Knuth's LCG */
            x[i] = letters[(state >> 33) % (sizeof letters - 1)];
        }
        if (mkdir(path, 0777) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

static int check_target(const char *target, rs_error *err)
{
    struct stat st;
    if (lstat(target, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        return rs_error_set(err, RS_EIO, "%s: %s", target, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return rs_error_set(err, RS_EINVAL, "%s: exists and is not a folder; not replacing it with a report",
                            target);
    int ok = replaceable(target);
    if (ok < 0)
        return rs_error_set(err, RS_EIO, "%s: cannot read the folder: %s", target, strerror(errno));
    if (!ok)
        return rs_error_set(err, RS_EINVAL,
                            "%s: folder is not empty and holds no report (no %s file); not replacing it",
                            target, RS_OUTDIR_MARKER);
    return 0;
}

int rs_outdir_begin(const char *target, rs_outdir *od, rs_error *err)
{
    size_t n = strlen(target);
    while (n > 1 && target[n - 1] == '/')
        n--;
    if (n == 0 || n >= sizeof od->target - 32)
        return rs_error_set(err, RS_EINVAL, "report folder '%s': empty or too long a name", target);
    memcpy(od->target, target, n);
    od->target[n] = '\0';
    od->temp[0] = '\0';
    int rc = check_target(od->target, err);
    if (rc)
        return rc;
    /* Beside the target (same file system, so the swap is a rename), hidden. */
    const char *slash = strrchr(od->target, '/');
    int dirlen = slash ? (int)(slash - od->target + 1) : 0;
    if (snprintf(od->temp, sizeof od->temp, "%.*s.%s.tmp-XXXXXX", dirlen, od->target, od->target + dirlen) >=
            (int)sizeof od->temp ||
        make_temp_dir(od->temp) != 0) {
        rc = rs_error_set(err, RS_EIO, "%s: cannot make a temporary folder beside it: %s", od->target,
                          strerror(errno));
        od->temp[0] = '\0';
        return rc;
    }
    /* A report replacing an earlier one (or an empty folder) keeps that folder's permissions. */
    struct stat st;
    if (stat(od->target, &st) == 0 && chmod(od->temp, st.st_mode & 07777) != 0) {
        rc = rs_error_set(err, RS_EIO, "%s: cannot give it the permissions of %s: %s", od->temp, od->target,
                          strerror(errno));
        rs_outdir_abort(od);
        return rc;
    }
    char marker[PATH_MAX + 32];
    snprintf(marker, sizeof marker, "%s/%s", od->temp, RS_OUTDIR_MARKER);
    FILE *f = fopen(marker, "w");
    int bad = !f || fputs(marker_text, f) == EOF;
    if (f && fclose(f) != 0)
        bad = 1;
    if (bad) {
        rc = rs_error_set(err, RS_EIO, "%s: cannot write: %s", marker, strerror(errno));
        rs_outdir_abort(od);
        return rc;
    }
    return 0;
}

int rs_outdir_commit(rs_outdir *od, rs_error *err)
{
    /* Checked again: the target may have changed while the report was written. */
    int rc = check_target(od->target, err);
    if (rc)
        return rc;
    if (rename(od->temp, od->target) == 0) { /* no target, or an empty folder */
        od->temp[0] = '\0';
        return 0;
    }
    if (errno != EEXIST && errno != ENOTEMPTY)
        return rs_error_set(err, RS_EIO, "%s: cannot move the report into place: %s", od->target, strerror(errno));
    /* One step: the target is the old report, then the new one, never neither. */
    if (renameat2(AT_FDCWD, od->temp, AT_FDCWD, od->target, RENAME_EXCHANGE) == 0) {
        if (remove_tree(od->temp) != 0)
            return rs_error_set(err, RS_EIO, "%s: report written, but the old one at %s could not be removed: %s",
                                od->target, od->temp, strerror(errno));
        od->temp[0] = '\0';
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS)
        return rs_error_set(err, RS_EIO, "%s: cannot swap the report into place: %s", od->target, strerror(errno));
    /* No exchange on this file system: the old report aside, the new one in, for a moment
     * no folder at all (never a half one). */
    char aside[PATH_MAX];
    snprintf(aside, sizeof aside, "%s", od->temp);
    memcpy(aside + strlen(aside) - strlen(".tmp-XXXXXX"), ".old-", 5); /* the suffix, not the name */
    if (rename(od->target, aside) != 0)
        return rs_error_set(err, RS_EIO, "%s: cannot move the old report aside: %s", od->target, strerror(errno));
    if (rename(od->temp, od->target) != 0) {
        rc = rs_error_set(err, RS_EIO, "%s: cannot move the report into place: %s", od->target, strerror(errno));
        rename(aside, od->target); /* the old report back; if even that fails, it is at ASIDE */
        return rc;
    }
    od->temp[0] = '\0';
    if (remove_tree(aside) != 0)
        return rs_error_set(err, RS_EIO, "%s: report written, but the old one at %s could not be removed: %s",
                            od->target, aside, strerror(errno));
    return 0;
}

void rs_outdir_abort(rs_outdir *od)
{
    if (od->temp[0])
        remove_tree(od->temp);
    od->temp[0] = '\0';
}
