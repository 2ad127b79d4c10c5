#include "source.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "idx.h"
#include "image.h"

struct rs_source {
    char *name;   /* the spec */
    int count;
    int *labels;  /* count entries, -1 for unknown */
    /* In-memory sets: image i is CHANNELS·HEIGHT·WIDTH planar bytes at
     * bytes + skip + i·stride (CIFAR records carry their labels in front). */
    uint8_t *bytes;
    size_t stride, skip;
    int channels, height, width;
    /* File sets: image i is decoded from paths[i]. */
    char **paths;
};

#define CIFAR_PIXELS 3072 /* 3 planes of 32x32 */

/* strerror is not thread-safe; see image.c. */
static const char *errno_text(int e, char *buf, size_t n)
{
    return strerror_r(e, buf, n);
}

void rs_source_close(rs_source *src)
{
    if (!src)
        return;
    if (src->paths)
        for (int i = 0; i < src->count; i++)
            free(src->paths[i]);
    free(src->paths);
    free(src->bytes);
    free(src->labels);
    free(src->name);
    free(src);
}

int rs_source_count(const rs_source *src) { return src->count; }
const char *rs_source_name(const rs_source *src) { return src->name; }
int rs_source_fit_version(const rs_source *src)
{
    return strncmp(src->name, "list:", 5) ? 1 : RS_IMAGE_FIT_VERSION;
}

int rs_source_label(const rs_source *src, int index)
{
    return index >= 0 && index < src->count ? src->labels[index] : -1;
}

const char *rs_source_path(const rs_source *src, int index)
{
    return src->paths && index >= 0 && index < src->count ? src->paths[index] : NULL;
}

int rs_source_shape(const rs_source *src, int *channels, int *height, int *width)
{
    if (!src->bytes)
        return 0;
    *channels = src->channels;
    *height = src->height;
    *width = src->width;
    return 1;
}

/* A new source named SPEC with COUNT labels set to -1. */
static int new_source(const char *spec, int count, rs_source **out, rs_error *err)
{
    rs_source *s = calloc(1, sizeof *s);
    if (s && !(s->name = strdup(spec))) {
        free(s);
        s = NULL;
    }
    if (s && count > 0 && !(s->labels = malloc(sizeof *s->labels * (size_t)count))) {
        rs_source_close(s);
        s = NULL;
    }
    if (!s)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", spec);
    s->count = count;
    for (int i = 0; i < count; i++)
        s->labels[i] = -1;
    *out = s;
    return 0;
}

/* ---- IDX ------------------------------------------------------------------------------ */

static int open_idx_pair(const char *spec, const char *images, const char *labels, rs_source **out, rs_error *err)
{
    rs_idx_images im;
    int rc = rs_idx_read_images(images, &im, err);
    if (rc)
        return rc;
    rs_source *s;
    if ((rc = new_source(spec, im.count, &s, err))) {
        rs_idx_images_free(&im);
        return rc;
    }
    s->bytes = im.pixels; /* ownership moves to the source */
    s->channels = 1;
    s->height = im.rows;
    s->width = im.cols;
    s->stride = (size_t)im.rows * im.cols;
    if (labels) {
        uint8_t *lab;
        int n;
        if ((rc = rs_idx_read_labels(labels, &lab, &n, err))) {
            rs_source_close(s);
            return rc;
        }
        if (n != s->count) {
            free(lab);
            rc = rs_error_set(err, RS_EFORMAT, "%s: %d labels for %d images in %s", labels, n, s->count, images);
            rs_source_close(s);
            return rc;
        }
        for (int i = 0; i < n; i++)
            s->labels[i] = lab[i];
        free(lab);
    }
    *out = s;
    return 0;
}

/* ---- CIFAR ---------------------------------------------------------------------------- */

/* DIR/NAME into PATH, without doubling a trailing slash of DIR. */
static void join(char *path, size_t n, const char *dir, const char *name)
{
    size_t len = strlen(dir);
    snprintf(path, n, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", name);
}

/* Appends the whole of PATH to *BUF (of *SIZE bytes), checking it holds whole records. */
static int append_records(const char *path, size_t record, uint8_t **buf, size_t *size, rs_error *err)
{
    char ebuf[128];
    FILE *f = fopen(path, "rb");
    if (!f)
        return rs_error_set(err, RS_EIO, "%s: cannot open: %s", path, errno_text(errno, ebuf, sizeof ebuf));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rs_error_set(err, RS_EIO, "%s: not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    if (n == 0 || n % record != 0) {
        fclose(f);
        return rs_error_set(err, RS_EFORMAT, "%s: size %zu is not a multiple of %zu%s", path, n, record,
                            n ? "" : " (empty file)");
    }
    if (*size + n > (size_t)INT_MAX * record) {
        fclose(f);
        return rs_error_set(err, RS_EFORMAT, "%s: too many records", path);
    }
    uint8_t *grown = realloc(*buf, *size + n);
    if (!grown) {
        fclose(f);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory for %zu bytes", path, *size + n);
    }
    *buf = grown;
    size_t got = fread(grown + *size, 1, n, f);
    int failed = ferror(f);
    fclose(f);
    if (got != n)
        return rs_error_set(err, failed ? RS_EIO : RS_EFORMAT, "%s: read %zu of its %zu bytes", path, got, n);
    *size += n;
    return 0;
}

/* cifar10:DIR[,train] and cifar100:DIR[,train]; FINE is 1 for CIFAR-100. */
static int open_cifar(const char *spec, const char *arg, int fine, rs_source **out, rs_error *err)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", arg);
    int train = 0;
    char *comma = strrchr(dir, ',');
    if (comma) {
        *comma = '\0';
        if (!strcmp(comma + 1, "train"))
            train = 1;
        else if (strcmp(comma + 1, "test"))
            return rs_error_set(err, RS_EINVAL, "--data %s: split must be test or train", spec);
    }
    if (!dir[0])
        return rs_error_set(err, RS_EINVAL, "--data %s: want %s:DIR[,train]", spec, fine ? "cifar100" : "cifar10");
    size_t skip = fine ? 2 : 1, record = skip + CIFAR_PIXELS;
    uint8_t *buf = NULL;
    size_t size = 0;
    char path[4200];
    int rc = 0;
    if (fine) {
        join(path, sizeof path, dir, train ? "train.bin" : "test.bin");
        rc = append_records(path, record, &buf, &size, err);
    } else if (!train) {
        join(path, sizeof path, dir, "test_batch.bin");
        rc = append_records(path, record, &buf, &size, err);
    } else {
        for (int b = 1; b <= 5 && !rc; b++) {
            char name[32];
            snprintf(name, sizeof name, "data_batch_%d.bin", b);
            join(path, sizeof path, dir, name);
            rc = append_records(path, record, &buf, &size, err);
        }
    }
    rs_source *s;
    if (rc || (rc = new_source(spec, (int)(size / record), &s, err))) {
        free(buf);
        return rc;
    }
    s->bytes = buf;
    s->stride = record;
    s->skip = skip;
    s->channels = 3;
    s->height = s->width = 32;
    int classes = fine ? 100 : 10;
    for (int i = 0; i < s->count; i++) {
        int label = buf[(size_t)i * record + skip - 1];
        if (label >= classes) {
            /* Records from several batches are concatenated; name the set, not one file. */
            rc = rs_error_set(err, RS_EFORMAT, "%s: record %d has label %d (CIFAR-%d labels are 0..%d)",
                              train && !fine ? dir : path, i, label, classes, classes - 1);
            rs_source_close(s);
            return rc;
        }
        s->labels[i] = label;
    }
    *out = s;
    return 0;
}

/* ---- file lists ----------------------------------------------------------------------- */

/* A growing list of paths with their labels. */
typedef struct entries {
    char **paths;
    int *labels;
    int count, cap;
} entries;

static int entries_add(entries *e, char *path, int label)
{
    if (e->count == e->cap) {
        int cap = e->cap ? 2 * e->cap : 256;
        char **p = realloc(e->paths, sizeof *p * (size_t)cap);
        if (p)
            e->paths = p;
        int *l = realloc(e->labels, sizeof *l * (size_t)cap);
        if (l)
            e->labels = l;
        if (!p || !l)
            return -1;
        e->cap = cap;
    }
    e->paths[e->count] = path;
    e->labels[e->count++] = label;
    return 0;
}

static void entries_free(entries *e)
{
    for (int i = 0; i < e->count; i++)
        free(e->paths[i]);
    free(e->paths);
    free(e->labels);
}

/* Moves E into a new source named SPEC. */
static int entries_to_source(const char *spec, entries *e, rs_source **out, rs_error *err)
{
    rs_source *s;
    int rc = new_source(spec, e->count, &s, err);
    if (rc) {
        entries_free(e);
        return rc;
    }
    memcpy(s->labels, e->labels, sizeof *s->labels * (size_t)e->count);
    s->paths = e->paths;
    free(e->labels);
    *e = (entries){0};
    *out = s;
    return 0;
}

/* Splits LINE (its newline already cut) of FILE:LINENO into the text before the last word
 * (*TEXT, right-trimmed, NULL for a blank or # line) and that word read as a label
 * (*LABEL; -1 and *HAS_LABEL = 0 when the line is a single word). */
static int split_line(char *line, const char *file, long lineno, char **text, int *label, int *has_label,
                      rs_error *err)
{
    *text = NULL;
    *has_label = 0;
    *label = -1;
    char *p = line + strspn(line, " \t\r");
    size_t len = strlen(p);
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r'))
        p[--len] = '\0';
    if (!len || p[0] == '#')
        return 0;
    char *sep = NULL;
    for (char *q = p + len; q > p; q--)
        if (q[-1] == ' ' || q[-1] == '\t') {
            sep = q - 1;
            break;
        }
    *text = p;
    if (!sep)
        return 0;
    char *word = sep + 1, *end;
    errno = 0;
    long v = strtol(word, &end, 10);
    if (*end || end == word || errno || v < -1 || v > INT_MAX)
        return rs_error_set(err, RS_EFORMAT, "%s:%ld: bad label '%s'", file, lineno, word);
    while (sep > p && (sep[-1] == ' ' || sep[-1] == '\t'))
        sep--;
    *sep = '\0';
    *label = (int)v;
    *has_label = 1;
    return 0;
}

/* Reads the next line of F into *LINE without its newline: -1 at the end (or on a read
 * error: check ferror), 1 when it holds a NUL byte (binary, not a list), else 0. */
static int next_line(FILE *f, char **line, size_t *cap)
{
    ssize_t n = getline(line, cap, f);
    if (n < 0)
        return -1;
    if (n && (*line)[n - 1] == '\n')
        (*line)[--n] = '\0';
    return strlen(*line) != (size_t)n;
}

/* 1 when PATH is a regular file (or a link to one); else 0 and WHY says what it is
 * instead: the errno text of a failed stat, or the kind of file. */
static int is_regular(const char *path, char *why, size_t n)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        char buf[128];
        snprintf(why, n, "%s", errno_text(errno, buf, sizeof buf)); /* GNU strerror_r may not use BUF */
        return 0;
    }
    if (S_ISREG(st.st_mode))
        return 1;
    const char *kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    snprintf(why, n, "is %s, not an image file", kind);
    return 0;
}

/* list:FILE */
static int open_list(const char *spec, const char *file, rs_source **out, rs_error *err)
{
    char ebuf[128];
    if (!file[0])
        return rs_error_set(err, RS_EINVAL, "--data %s: want list:FILE", spec);
    FILE *f = fopen(file, "r");
    if (!f)
        return rs_error_set(err, RS_EIO, "%s: cannot open: %s", file, errno_text(errno, ebuf, sizeof ebuf));
    const char *slash = strrchr(file, '/');
    int dirlen = slash ? (int)(slash - file) + 1 : 0; /* FILE's folder, with its slash */
    entries e = {0};
    char *line = NULL;
    size_t cap = 0;
    int n;
    long lineno = 0;
    int rc = 0;
    errno = 0;
    while (!rc && (n = next_line(f, &line, &cap)) >= 0) {
        lineno++;
        if (n) {
            rc = rs_error_set(err, RS_EFORMAT, "%s:%ld: not a line of text (it holds a NUL byte)", file, lineno);
            break;
        }
        char *text;
        int label, has_label;
        if ((rc = split_line(line, file, lineno, &text, &label, &has_label, err)) || !text)
            continue;
        char *path = malloc((size_t)dirlen + strlen(text) + 1);
        if (!path) {
            rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", file);
            break;
        }
        if (text[0] == '/')
            strcpy(path, text);
        else
            sprintf(path, "%.*s%s", dirlen, file, text);
        if (!is_regular(path, ebuf, sizeof ebuf)) {
            rc = rs_error_set(err, RS_EIO, "%s:%ld: %s: %s", file, lineno, path, ebuf);
            free(path);
        } else if (e.count == INT_MAX || entries_add(&e, path, label)) {
            rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", file);
            free(path);
        }
    }
    if (!rc && ferror(f))
        rc = rs_error_set(err, RS_EIO, "%s: cannot read: %s", file, errno_text(errno, ebuf, sizeof ebuf));
    free(line);
    fclose(f);
    if (!rc && !e.count)
        rc = rs_error_set(err, RS_EFORMAT, "%s: lists no images", file);
    if (rc) {
        entries_free(&e);
        return rc;
    }
    return entries_to_source(spec, &e, out, err);
}

static int has_png_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcasecmp(name + n - 4, ".png");
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sets labels from DIR/labels.txt when it exists; NAMES are the sorted file names. */
static int read_labels_txt(const char *dir, char **names, int *labels, int count, rs_error *err)
{
    char path[4200], ebuf[128];
    join(path, sizeof path, dir, "labels.txt");
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0
                               : rs_error_set(err, RS_EIO, "%s: cannot open: %s", path,
                                              errno_text(errno, ebuf, sizeof ebuf));
    char *line = NULL;
    size_t cap = 0;
    int n;
    long lineno = 0;
    int rc = 0;
    unsigned char *seen = calloc((size_t)count, 1);
    if (!seen)
        rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", path);
    while (!rc && (n = next_line(f, &line, &cap)) >= 0) {
        lineno++;
        if (n) {
            rc = rs_error_set(err, RS_EFORMAT, "%s:%ld: not a line of text (it holds a NUL byte)", path, lineno);
            break;
        }
        char *text;
        int label, has_label;
        if ((rc = split_line(line, path, lineno, &text, &label, &has_label, err)) || !text)
            continue;
        if (!has_label) {
            rc = rs_error_set(err, RS_EFORMAT, "%s:%ld: want 'FILENAME LABEL'", path, lineno);
            break;
        }
        char **hit = bsearch(&text, names, (size_t)count, sizeof *names, compare_names);
        if (!hit)
            rc = rs_error_set(err, RS_EFORMAT, "%s:%ld: '%s' is not one of the folder's PNG files", path, lineno,
                              text);
        else if (seen[hit - names]++)
            rc = rs_error_set(err, RS_EFORMAT, "%s:%ld: '%s' is labelled twice", path, lineno, text);
        else
            labels[hit - names] = label;
    }
    if (!rc && ferror(f))
        rc = rs_error_set(err, RS_EIO, "%s: cannot read: %s", path, errno_text(errno, ebuf, sizeof ebuf));
    free(seen);
    free(line);
    fclose(f);
    return rc;
}

/* png:DIR */
static int open_png_dir(const char *spec, const char *dir, rs_source **out, rs_error *err)
{
    char ebuf[128];
    if (!dir[0])
        return rs_error_set(err, RS_EINVAL, "--data %s: want png:DIR", spec);
    DIR *d = opendir(dir);
    if (!d)
        return rs_error_set(err, RS_EIO, "%s: cannot open folder: %s", dir, errno_text(errno, ebuf, sizeof ebuf));
    entries e = {0};
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (!has_png_suffix(de->d_name))
            continue;
        char *name = strdup(de->d_name);
        if (!name || e.count == INT_MAX || entries_add(&e, name, -1)) {
            free(name);
            rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", dir);
        }
    }
    closedir(d);
    if (!rc && !e.count)
        rc = rs_error_set(err, RS_EFORMAT, "%s: no .png files in the folder", dir);
    if (!rc) {
        qsort(e.paths, (size_t)e.count, sizeof *e.paths, compare_names);
        rc = read_labels_txt(dir, e.paths, e.labels, e.count, err);
    }
    /* Names become paths; folders named *.png are refused now rather than mid-run. */
    for (int i = 0; !rc && i < e.count; i++) {
        size_t len = strlen(dir) + strlen(e.paths[i]) + 2;
        char *path = malloc(len);
        if (!path) {
            rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", dir);
            break;
        }
        join(path, len, dir, e.paths[i]);
        free(e.paths[i]);
        e.paths[i] = path;
        if (!is_regular(path, ebuf, sizeof ebuf))
            rc = rs_error_set(err, RS_EIO, "%s: %s", path, ebuf);
    }
    if (rc) {
        entries_free(&e);
        return rc;
    }
    return entries_to_source(spec, &e, out, err);
}

/* ---- the spec ------------------------------------------------------------------------- */

int rs_source_open(const char *spec, rs_source **out, rs_error *err)
{
    *out = NULL;
    if (!strncmp(spec, "fashion-mnist:", 14)) {
        const char *split = spec + 14;
        const char *stem = !strcmp(split, "test") ? "t10k" : !strcmp(split, "train") ? "train" : NULL;
        if (!stem)
            return rs_error_set(err, RS_EINVAL, "--data %s: split must be test or train", spec);
        char images[512], labels[512];
        snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", RS_FASHION_MNIST_DIR, stem);
        snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", RS_FASHION_MNIST_DIR, stem);
        return open_idx_pair(spec, images, labels, out, err);
    }
    if (!strncmp(spec, "idx:", 4)) {
        char images[4096];
        snprintf(images, sizeof images, "%s", spec + 4);
        char *comma = strchr(images, ',');
        if (comma)
            *comma = '\0';
        if (!images[0] || (comma && !comma[1]))
            return rs_error_set(err, RS_EINVAL, "--data %s: want idx:IMAGES[,LABELS]", spec);
        return open_idx_pair(spec, images, comma ? comma + 1 : NULL, out, err);
    }
    if (!strncmp(spec, "cifar10:", 8))
        return open_cifar(spec, spec + 8, 0, out, err);
    if (!strncmp(spec, "cifar100:", 9))
        return open_cifar(spec, spec + 9, 1, out, err);
    if (!strncmp(spec, "png:", 4))
        return open_png_dir(spec, spec + 4, out, err);
    if (!strncmp(spec, "list:", 5))
        return open_list(spec, spec + 5, out, err);
    return rs_error_set(err, RS_EINVAL,
                        "--data %s: unknown source (want fashion-mnist:test|train, idx:IMAGES[,LABELS], "
                        "cifar10:DIR[,train], cifar100:DIR[,train], png:DIR or list:FILE)",
                        spec);
}

/* ---- loading -------------------------------------------------------------------------- */

int rs_source_load(rs_source *src, int index, int channels, int height, int width, float *out, rs_error *err)
{
    if (index < 0 || index >= src->count)
        return rs_error_set(err, RS_EINVAL, "%s: image %d is outside 0..%d", src->name, index, src->count - 1);
    if (src->bytes)
        return rs_image_fit_u8(src->bytes + src->skip + (size_t)index * src->stride, src->channels, src->height,
                               src->width, channels, height, width, out, src->name, err);
    return rs_image_read_fit(src->paths[index], channels, height, width, out, err);
}

int rs_source_load_batch(rs_source *src, int first, int n, int channels, int height, int width, int threads,
                         float *out, rs_error *err)
{
    size_t size = (size_t)channels * height * width;
    int lowest = n;
    rs_error lowest_err = {0};
    #pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if(threads > 1 && n > 1)
    for (int i = 0; i < n; i++) {
        rs_error local;
        if (rs_source_load(src, first + i, channels, height, width, out + (size_t)i * size, &local)) {
            #pragma omp critical(rs_source_load_batch)
            if (i < lowest) {
                lowest = i;
                lowest_err = local;
            }
        }
    }
    if (lowest < n) {
        if (err)
            *err = lowest_err;
        return lowest_err.code;
    }
    return 0;
}

/* Appends PATH, made absolute when it resolves, to OUT. */
static int append_path(char *out, size_t size, const char *path, size_t len)
{
    char given[PATH_MAX], resolved[PATH_MAX];
    if (len >= sizeof given)
        return -1;
    memcpy(given, path, len);
    given[len] = '\0';
    const char *use = realpath(given, resolved) ? resolved : given;
    size_t used = strlen(out);
    return snprintf(out + used, size - used, "%s", use) >= (int)(size - used) ? -1 : 0;
}

int rs_source_canonical_spec(const char *spec, char *out, size_t size, rs_error *err)
{
    static const char *const with_paths[] = {"idx:", "cifar10:", "cifar100:", "png:", "list:"};
    out[0] = '\0';
    const char *rest = NULL;
    for (size_t i = 0; i < sizeof with_paths / sizeof *with_paths; i++) {
        if (!strncmp(spec, with_paths[i], strlen(with_paths[i]))) {
            rest = spec + strlen(with_paths[i]);
            snprintf(out, size, "%s", with_paths[i]);
        }
    }
    if (!rest) {
        if (snprintf(out, size, "%s", spec) >= (int)size)
            return rs_error_set(err, RS_EINVAL, "--data %.60s...: too long", spec);
        return 0;
    }
    /* idx:IMAGES,LABELS has two paths; cifar's ",train" / ",test" is a word, not a path. */
    const char *comma = strrchr(rest, ',');
    bool split_word = comma && (!strcmp(comma, ",train") || !strcmp(comma, ",test"));
    bool two_paths = !strncmp(spec, "idx:", 4) && comma;
    size_t first_len = (split_word || two_paths) ? (size_t)(comma - rest) : strlen(rest);
    int rc = append_path(out, size, rest, first_len);
    if (!rc && two_paths) {
        size_t used = strlen(out);
        rc = used + 1 < size ? (out[used] = ',', out[used + 1] = '\0', 0) : -1;
        if (!rc)
            rc = append_path(out, size, comma + 1, strlen(comma + 1));
    } else if (!rc && split_word) {
        size_t used = strlen(out);
        rc = snprintf(out + used, size - used, "%s", comma) >= (int)(size - used) ? -1 : 0;
    }
    return rc ? rs_error_set(err, RS_EINVAL, "--data %.60s...: path too long", spec) : 0;
}
