#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float *tu_tensor_f32(const rs_safetensors *st, const char *name, size_t *numel)
{
    const rs_st_tensor *t = rs_safetensors_find(st, name);
    if (!t)
        return NULL;
    float *out = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
    if (!out)
        return NULL;
    rs_dtype_to_f32(t->dtype, t->data, out, (size_t)t->numel);
    if (numel)
        *numel = (size_t)t->numel;
    return out;
}

unsigned char *tu_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf && size)
        *size = (size_t)n;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, size, f);
    return fclose(f) || w != size ? -1 : 0;
}

const char *tu_dir(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

int tu_scratch_dir(const char *name, char *dir, size_t size)
{
    static const char *const roots[2] = {"/dev/shm", "/tmp"};
    for (int i = 0; i < 2; i++) {
        snprintf(dir, size, "%s/rs_test_%s_XXXXXX", roots[i], name);
        if (mkdtemp(dir))
            return 0;
    }
    return -1;
}

const char *tu_path(const char *dir, const char *name)
{
    static char path[4][1100];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    return p;
}

void tu_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            remove(path);
        }
    }
    closedir(d);
    if (remove(dir) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int tu_set_backend(rs_model *m, rs_error *err)
{
    const char *name = getenv("RS_GEMM");
    rs_gemm_backend backend = RS_GEMM_OPENBLAS;
    int rc = name ? rs_gemm_backend_parse(name, &backend, err) : 0;
    return rc ? rc : rs_model_set_compute(m, backend, RS_PRECISION_F32, err);
}
