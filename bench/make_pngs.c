/* make_pngs — writes the first N images of a --data source as SIZE x SIZE RGB PNGs plus a
 * list file, for benchmarking replay on ImageNet-sized inputs without ImageNet:
 *   make_pngs SRC N SIZE DIR   -> DIR/img_00000.png ..., DIR/list.txt ("PATH LABEL" lines)
 * Images are fitted like any model input (bilinear) and given a colour tint per class so
 * that the three channels differ. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>

#include "input/source.h"

static int write_png(const char *path, const unsigned char *rgb, int size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)size, (png_uint_32)size, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < size; y++)
        png_write_row(png, rgb + (size_t)y * size * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: make_pngs SRC N SIZE DIR\n");
        return 2;
    }
    int n = atoi(argv[2]), size = atoi(argv[3]);
    rs_source *src;
    rs_error err;
    if (rs_source_open(argv[1], &src, &err)) {
        fprintf(stderr, "make_pngs: %s\n", err.msg);
        return 1;
    }
    float *px = malloc(sizeof(float) * 3 * size * size);
    unsigned char *rgb = malloc((size_t)3 * size * size);
    char path[4096];
    snprintf(path, sizeof path, "%s/list.txt", argv[4]);
    FILE *list = fopen(path, "w");
    if (!px || !rgb || !list) {
        fprintf(stderr, "make_pngs: cannot write %s\n", path);
        return 1;
    }
    for (int i = 0; i < n && i < rs_source_count(src); i++) {
        if (rs_source_load(src, i, 3, size, size, px, &err)) {
            fprintf(stderr, "make_pngs: %s\n", err.msg);
            return 1;
        }
        int label = rs_source_label(src, i);
        float tint[3] = {1.0f - 0.05f * (label % 5), 1.0f, 0.6f + 0.04f * label};
        for (int p = 0; p < size * size; p++)
            for (int c = 0; c < 3; c++) {
                float v = px[(size_t)c * size * size + p] * tint[c];
                rgb[(size_t)p * 3 + c] = (unsigned char)(v > 1 ? 255 : v * 255 + 0.5f);
            }
        snprintf(path, sizeof path, "%s/img_%05d.png", argv[4], i);
        if (write_png(path, rgb, size)) {
            fprintf(stderr, "make_pngs: cannot write %s\n", path);
            return 1;
        }
        fprintf(list, "img_%05d.png %d\n", i, label);
    }
    fclose(list);
    free(px);
    free(rgb);
    rs_source_close(src);
    return 0;
}
