#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"

static int open_idx_pair(const char *spec, const char *images, const char *labels, rs_dataset *ds,
                         rs_error *err)
{
    rs_idx_images im;
    int rc = rs_idx_read_images(images, &im, err);
    if (rc)
        return rc;
    ds->count = im.count;
    ds->height = im.rows;
    ds->width = im.cols;
    ds->channels = 1;
    ds->pixels = im.pixels; /* ownership moves to the dataset */
    snprintf(ds->name, sizeof ds->name, "%s", spec);
    if (!(ds->labels = malloc(sizeof *ds->labels * (size_t)ds->count))) {
        rs_dataset_close(ds);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", spec);
    }
    for (int i = 0; i < ds->count; i++)
        ds->labels[i] = -1;
    if (!labels)
        return 0;
    uint8_t *lab;
    int n;
    if ((rc = rs_idx_read_labels(labels, &lab, &n, err))) {
        rs_dataset_close(ds);
        return rc;
    }
    if (n != ds->count) {
        free(lab);
        rs_dataset_close(ds);
        return rs_error_set(err, RS_EFORMAT, "%s: %d labels for %d images in %s", labels, n, ds->count, images);
    }
    for (int i = 0; i < n; i++)
        ds->labels[i] = lab[i];
    free(lab);
    return 0;
}

int rs_dataset_open(const char *spec, rs_dataset *out, rs_error *err)
{
    memset(out, 0, sizeof *out);
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
        char images[512];
        snprintf(images, sizeof images, "%s", spec + 4);
        char *comma = strchr(images, ',');
        if (comma)
            *comma = '\0';
        if (!images[0])
            return rs_error_set(err, RS_EINVAL, "--data %s: want idx:IMAGES[,LABELS]", spec);
        return open_idx_pair(spec, images, comma ? comma + 1 : NULL, out, err);
    }
    return rs_error_set(err, RS_EINVAL, "--data %s: unknown source (want fashion-mnist:test|train or idx:IMAGES[,LABELS])",
                        spec);
}

void rs_dataset_close(rs_dataset *ds)
{
    free(ds->pixels);
    free(ds->labels);
    ds->pixels = NULL;
    ds->labels = NULL;
}

int rs_dataset_check(const rs_dataset *ds, const rs_config *cfg, rs_error *err)
{
    if (ds->height != cfg->image_h || ds->width != cfg->image_w ||
        (ds->channels != 1 && ds->channels != cfg->channels))
        return rs_error_set(err, RS_EINVAL, "%s: images are %dx%dx%d but the model wants %dx%dx%d", ds->name,
                            ds->height, ds->width, ds->channels, cfg->image_h, cfg->image_w, cfg->channels);
    return 0;
}

void rs_dataset_batch(const rs_dataset *ds, const rs_config *cfg, int first, int n, float *out)
{
    size_t plane = (size_t)ds->height * ds->width;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = ds->pixels + (size_t)(first + i) * ds->channels * plane;
        for (int c = 0; c < cfg->channels; c++) {
            const uint8_t *s = src + (ds->channels == 1 ? 0 : (size_t)c * plane);
            float *d = out + ((size_t)i * cfg->channels + c) * plane;
            /* The same float operations as the PyTorch reference, (x/255 - mean)/std. */
            for (size_t p = 0; p < plane; p++)
                d[p] = ((float)s[p] / 255.0f - cfg->mean[c]) / cfg->std[c];
        }
    }
}
