/* fuzz_source.c — the file-backed image sets: IDX pairs, CIFAR-10/100 binaries, list:
 * files and png: folders. The first byte picks the kind; the rest holds the files,
 * separated by FZ_SEP (fuzz_util.h):
 *   0 idx       IMAGES | LABELS
 *   1 cifar10   test_batch.bin
 *   2 cifar100  test.bin
 *   3 list      list.txt | a.png | b.jpg          (list lines may name a.png, b.jpg, ...)
 *   4 png dir   labels.txt | x.png | y.png
 * Every image of an opened set (at most 8) is loaded as a 1×28×28 input. */
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "input/source.h"

#define MAX_PARTS 4

static void write_parts(const char *const *names, const uint8_t **parts, const size_t *sizes, int n)
{
    char path[256];
    for (int i = 0; i < n && names[i]; i++)
        fz_write(names[i], parts[i], sizes[i], path, sizeof path);
}

static void clear(const char *const *names)
{
    char path[256];
    for (int i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", fz_dir(), names[i]);
        remove(path);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[5][MAX_PARTS + 1] = {
        {"img.idx", "lab.idx", NULL}, {"c10/test_batch.bin", NULL},    {"c100/test.bin", NULL},
        {"list.txt", "a.png", "b.jpg", NULL}, {"pngs/labels.txt", "pngs/x.png", "pngs/y.png", NULL}};
    if (size < 1)
        return 0;
    int kind = data[0] % 5;
    const uint8_t *parts[MAX_PARTS];
    size_t sizes[MAX_PARTS];
    int n = fz_split(data + 1, size - 1, parts, sizes, MAX_PARTS);
    char dir[256], spec[600];
    static const char *const subdirs[] = {"c10", "c100", "pngs"};
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof dir, "%s/%s", fz_dir(), subdirs[i]);
        mkdir(dir, 0700);
    }
    write_parts(names[kind], parts, sizes, n);
    const char *d = fz_dir();
    switch (kind) {
    case 0: snprintf(spec, sizeof spec, "idx:%s/img.idx%s", d, n > 1 ? ",lab.idx" : ""); break;
    case 1: snprintf(spec, sizeof spec, "cifar10:%s/c10", d); break;
    case 2: snprintf(spec, sizeof spec, "cifar100:%s/c100", d); break;
    case 3: snprintf(spec, sizeof spec, "list:%s/list.txt", d); break;
    default: snprintf(spec, sizeof spec, "png:%s/pngs", d); break;
    }
    if (kind == 0 && n > 1) /* the labels path is relative to nothing: make it absolute */
        snprintf(spec, sizeof spec, "idx:%s/img.idx,%s/lab.idx", d, d);
    rs_source *src = NULL;
    rs_error err;
    if (rs_source_open(spec, &src, &err) == 0) {
        static float out[28 * 28];
        int count = rs_source_count(src);
        for (int i = 0; i < count && i < 8; i++) {
            rs_source_label(src, i);
            rs_source_load(src, i, 1, 28, 28, out, &err);
        }
    }
    rs_source_close(src);
    clear(names[kind]);
    return 0;
}
