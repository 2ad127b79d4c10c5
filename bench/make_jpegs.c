/* make_jpegs — writes the first N images of a --data source as WIDTH x HEIGHT RGB JPEGs
 * (quality 90) plus a list file, for timing replay on ImageNet-like files without ImageNet:
 *   make_jpegs SRC N WIDTH HEIGHT DIR  -> DIR/img_00000.jpg ..., DIR/list.txt ("PATH LABEL")
 * Each image is fitted like a model input (bilinear), tinted per class so that the channels
 * differ, and given seeded pixel noise (±40 levels) so that the files carry about as much
 * entropy-coded data as photographs of that size (ImageNet's average is ~110 kB). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h> /* after stdio.h: it uses size_t and FILE without including them */

#include "input/source.h"

static int write_jpeg(const char *path, const unsigned char *rgb, int w, int h)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)c.next_scanline * w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: make_jpegs SRC N WIDTH HEIGHT DIR\n");
        return 2;
    }
    int n = atoi(argv[2]), w = atoi(argv[3]), h = atoi(argv[4]);
    rs_source *src;
    rs_error err;
    if (n < 1 || w < 1 || h < 1 || rs_source_open(argv[1], &src, &err)) {
        fprintf(stderr, "make_jpegs: %s\n", n < 1 || w < 1 || h < 1 ? "N, WIDTH and HEIGHT must be >= 1" : err.msg);
        return 1;
    }
    float *px = malloc(sizeof(float) * 3 * (size_t)w * h);
    unsigned char *rgb = malloc((size_t)3 * w * h);
    char path[4096];
    snprintf(path, sizeof path, "%s/list.txt", argv[5]);
    FILE *list = fopen(path, "w");
    if (!px || !rgb || !list) {
        fprintf(stderr, "make_jpegs: cannot write %s\n", path);
        return 1;
    }
    uint32_t state = 12345; /* xorshift: the same files on every run */
    for (int i = 0; i < n && i < rs_source_count(src); i++) {
        if (rs_source_load(src, i, 3, h, w, px, &err)) {
            fprintf(stderr, "make_jpegs: %s\n", err.msg);
            return 1;
        }
        int label = rs_source_label(src, i);
        float tint[3] = {1.0f - 0.05f * (label % 5), 1.0f, 0.6f + 0.04f * label};
        for (size_t p = 0; p < (size_t)w * h; p++)
            for (int c = 0; c < 3; c++) {
                state ^= state << 13, state ^= state >> 17, state ^= state << 5;
                float v = px[(size_t)c * w * h + p] * tint[c] * 255 + (float)(state % 81) - 40;
                rgb[p * 3 + c] = (unsigned char)(v > 255 ? 255 : v < 0 ? 0 : v + 0.5f);
            }
        snprintf(path, sizeof path, "%s/img_%05d.jpg", argv[5], i);
        if (write_jpeg(path, rgb, w, h)) {
            fprintf(stderr, "make_jpegs: cannot write %s\n", path);
            return 1;
        }
        fprintf(list, "img_%05d.jpg %d\n", i, label);
    }
    fclose(list);
    free(px);
    free(rgb);
    rs_source_close(src);
    return 0;
}
