/* fuzz_util.c — scratch files for the fuzz targets (see fuzz_util.h). */
#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char scratch[64];

static void remove_scratch(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", scratch);
}

const char *fz_dir(void)
{
    if (!scratch[0]) {
        snprintf(scratch, sizeof scratch, "/tmp/rs_fuzz_XXXXXX");
        if (!mkdtemp(scratch))
            abort();
        atexit(remove_scratch);
    }
    return scratch;
}

void fz_write(const char *name, const uint8_t *data, size_t size, char *path, size_t path_size)
{
    snprintf(path, path_size, "%s/%s", fz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
}

int fz_split(const uint8_t *data, size_t size, const uint8_t **parts, size_t *sizes, int max)
{
    size_t sep = strlen(FZ_SEP);
    int n = 0;
    const uint8_t *start = data, *end = data + size;
    while (n < max - 1) {
        const uint8_t *hit = memmem(start, (size_t)(end - start), FZ_SEP, sep);
        if (!hit)
            break;
        parts[n] = start;
        sizes[n++] = (size_t)(hit - start);
        start = hit + sep;
    }
    parts[n] = start;
    sizes[n++] = (size_t)(end - start);
    return n;
}
