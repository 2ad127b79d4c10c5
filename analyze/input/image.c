#include "image.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

/* jpeglib.h wants stdio.h first; jerror.h names the warning we promote to an error. */
#include <jerror.h>

/* strerror is not thread-safe and decoders run on several threads; _GNU_SOURCE (set by
 * meson.build) gives the GNU strerror_r, which returns the text. */
static const char *errno_text(int e, char *buf, size_t n)
{
    return strerror_r(e, buf, n);
}

/* TABLE[v] = v/255.0f: the same values as dividing, without a division per sample. */
static void u8_table(float table[256])
{
    for (int v = 0; v < 256; v++)
        table[v] = (float)v / 255.0f;
}

void rs_image_free(rs_image *im)
{
    if (!im)
        return;
    free(im->pixels);
    *im = (rs_image){0};
}

/* ---- bilinear taps ----------------------------------------------------------------------- */

/* One output coordinate's two source samples and their weights. */
typedef struct tap {
    int i0, i1;
    float l0, l1;
} tap;

/* Taps for TARGET outputs from a source of length N scaled by S (covering, so the scaled
 * length round(N·S) >= TARGET), after dropping the first (scaled − TARGET)/2 outputs. */
static void make_taps(int n, int target, double s, tap *t)
{
    long scaled = lround(n * s);
    if (scaled < target)
        scaled = target;
    long offset = (scaled - target) / 2;
    for (int d = 0; d < target; d++) {
        double src = ((double)(d + offset) + 0.5) / s - 0.5;
        if (src < 0)
            src = 0;
        int i0 = (int)src;
        if (i0 >= n - 1) {
            t[d] = (tap){n - 1, n - 1, 1.0f, 0.0f};
            continue;
        }
        float l1 = (float)(src - i0);
        t[d] = (tap){i0, i0 + 1, 1.0f - l1, l1};
    }
}

/* DST (H,W) = bilinear samples of SRC (h,w) at taps TY (H) and TX (W). */
static void resize_plane(const float *src, int w, const tap *ty, int H, const tap *tx, int W, float *dst)
{
    for (int y = 0; y < H; y++) {
        const float *r0 = src + (size_t)ty[y].i0 * w, *r1 = src + (size_t)ty[y].i1 * w;
        float a = ty[y].l0, b = ty[y].l1;
        for (int x = 0; x < W; x++) {
            const tap *t = &tx[x];
            dst[(size_t)y * W + x] = a * (t->l0 * r0[t->i0] + t->l1 * r0[t->i1]) +
                                     b * (t->l0 * r1[t->i0] + t->l1 * r1[t->i1]);
        }
    }
}

/* ---- where decoded rows go ------------------------------------------------------------- */

static int check_fit_msg(int c, int h, int w, int channels, int height, int width, char *msg, size_t n);

/* A fit that takes the source one row at a time, top to bottom, and holds only two of its
 * rows resized across (rs_image_read_fit). Its arithmetic is resize_plane's operation for
 * operation: a row's horizontal blend is the same float expression, stored, and the
 * vertical blend weighs the two stored rows in the same order; analyze/ is compiled with
 * -ffp-contract=off, so the pixels are bit for bit rs_image_fit's. Output row y needs
 * source rows ty[y].i0 and ty[y].i1, which are r-1 and r, or r and r at the clamped
 * bottom edge, and never decrease with y: when row r arrives, every output row whose
 * i1 is r can be written. */
typedef struct row_fit {
    int w, planes, luma, same;  /* source columns; planes resized (1 or 3); RGB -> grey;
                                   the source already has the target size */
    int channels, height, width;
    tap *ty, *tx;               /* (height) (width) */
    float *grey;                /* (w) luma of the current row */
    float *hbuf;                /* (2, planes, width): holds hprev and hcur */
    float *hprev, *hcur;        /* (planes, width) rows r-1 and r, resized across */
    float *out;                 /* (channels, height, width), caller-owned */
    int next;                   /* next output row to write */
} row_fit;

static int row_fit_init(row_fit *f, int c, int h, int w, int channels, int height, int width, float *out)
{
    *f = (row_fit){.w = w, .luma = c == 3 && channels == 1, .same = h == height && w == width,
                   .channels = channels, .height = height, .width = width, .out = out};
    f->planes = f->luma ? 1 : c;
    size_t across = (size_t)f->planes * width;
    f->ty = malloc(sizeof(tap) * ((size_t)height + width));
    f->grey = malloc(sizeof(float) * (size_t)w);
    f->hbuf = malloc(sizeof(float) * across * 2);
    if (!f->ty || !f->grey || !f->hbuf)
        return RS_ENOMEM;
    f->tx = f->ty + height;
    f->hprev = f->hbuf;
    f->hcur = f->hbuf + across;
    double s = fmax((double)height / h, (double)width / w);
    make_taps(h, height, s, f->ty);
    make_taps(w, width, s, f->tx);
    return 0;
}

static void row_fit_free(row_fit *f)
{
    free(f->ty);
    free(f->grey);
    free(f->hbuf);
}

/* Source row R, (C, w) planar floats. */
static void row_fit_push(row_fit *f, int r, const float *row)
{
    size_t w = (size_t)f->w, oplane = (size_t)f->height * f->width;
    const float *src = row;
    if (f->luma) {
        for (size_t x = 0; x < w; x++)
            f->grey[x] = 0.299f * row[x] + 0.587f * row[w + x] + 0.114f * row[2 * w + x];
        src = f->grey;
    }
    if (f->same) { /* exact: no resampling, as fit's memcpy */
        for (int p = 0; p < f->planes; p++)
            memcpy(f->out + p * oplane + (size_t)r * w, src + p * w, sizeof(float) * w);
        f->next = r + 1;
        return;
    }
    for (int p = 0; p < f->planes; p++)
        for (int x = 0; x < f->width; x++) {
            const tap *t = &f->tx[x];
            const float *sp = src + p * w;
            f->hcur[(size_t)p * f->width + x] = t->l0 * sp[t->i0] + t->l1 * sp[t->i1];
        }
    for (; f->next < f->height && f->ty[f->next].i1 == r; f->next++) {
        const tap *t = &f->ty[f->next];
        const float *h0 = t->i0 == r ? f->hcur : f->hprev;
        for (int p = 0; p < f->planes; p++)
            for (int x = 0; x < f->width; x++) {
                size_t i = (size_t)p * f->width + x;
                f->out[p * oplane + (size_t)f->next * f->width + x] = t->l0 * h0[i] + t->l1 * f->hcur[i];
            }
    }
    float *swap = f->hprev;
    f->hprev = f->hcur;
    f->hcur = swap;
}

/* After the last row: grey replicated to every target channel, as fit does. */
static void row_fit_finish(row_fit *f)
{
    size_t oplane = (size_t)f->height * f->width;
    for (int p = f->planes; p < f->channels; p++)
        memcpy(f->out + p * oplane, f->out, sizeof(float) * oplane);
}

/* Decoders convert each row to floats in ROW and hand it over; the sink keeps the whole
 * image (rs_image_decode) or fits it on the fly (rs_image_read_fit, when TARGET_C > 0). */
typedef struct sink {
    int target_c, target_h, target_w; /* the fit's target, or 0 to keep the image */
    float *target;                    /* (target_c, target_h, target_w), caller-owned */
    int c, h, w;                      /* the source: planes kept (1 or 3), rows, columns */
    float *row;                       /* (c, w): the decoder's next row */
    float *pixels;                    /* (c, h, w) when keeping the image */
    row_fit fit;
    int fitting;
} sink;

/* Allocates for a C x H x W source; on failure returns the code and describes it in MSG. */
static int sink_begin(sink *k, int c, int h, int w, char *msg, size_t n)
{
    k->c = c;
    k->h = h;
    k->w = w;
    if (k->target_c > 0) {
        int rc = check_fit_msg(c, h, w, k->target_c, k->target_h, k->target_w, msg, n);
        if (rc)
            return rc;
        k->fitting = 1;
        rc = row_fit_init(&k->fit, c, h, w, k->target_c, k->target_h, k->target_w, k->target);
        k->row = malloc(sizeof(float) * (size_t)c * w);
        if (rc || !k->row) {
            snprintf(msg, n, "out of memory for a %dx%d image", w, h);
            return RS_ENOMEM;
        }
        return 0;
    }
    k->row = malloc(sizeof(float) * (size_t)c * w);
    k->pixels = malloc(sizeof(float) * (size_t)c * h * w);
    if (!k->row || !k->pixels) {
        snprintf(msg, n, "out of memory for a %dx%d image", w, h);
        return RS_ENOMEM;
    }
    return 0;
}

/* ROW now holds source row Y. */
static void sink_put(sink *k, int y)
{
    if (k->fitting) {
        row_fit_push(&k->fit, y, k->row);
        return;
    }
    size_t plane = (size_t)k->h * k->w;
    for (int p = 0; p < k->c; p++)
        memcpy(k->pixels + p * plane + (size_t)y * k->w, k->row + (size_t)p * k->w, sizeof(float) * k->w);
}

/* Every row was put: the fit is complete, or the image moves to OUT. */
static void sink_finish(sink *k, rs_image *out)
{
    if (k->fitting) {
        row_fit_finish(&k->fit);
        return;
    }
    *out = (rs_image){.channels = k->c, .height = k->h, .width = k->w, .pixels = k->pixels};
    k->pixels = NULL;
}

static void sink_free(sink *k)
{
    if (k->fitting)
        row_fit_free(&k->fit);
    free(k->row);
    free(k->pixels);
}

/* ---- PNG ------------------------------------------------------------------------------ */

/* Everything the libpng callbacks and the cleanup share. The function that calls setjmp
 * reaches it only through a pointer, so no local variable of that function changes
 * between setjmp and longjmp (whose values C would leave indeterminate). */
typedef struct png_job {
    const char *path;
    FILE *f;
    png_structp png;
    png_infop info;
    unsigned char *buf;  /* one row, or the whole image when interlaced */
    sink *sink;
    int code;
    char msg[200];
} png_job;

static void png_on_error(png_structp png, png_const_charp text)
{
    png_job *job = png_get_error_ptr(png);
    if (!job->msg[0]) { /* a read callback may have described the failure already */
        job->code = RS_EFORMAT;
        snprintf(job->msg, sizeof job->msg, "corrupt PNG (%.150s)", text);
    }
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp text)
{
    /* Library code never prints; warnings (e.g. an unknown ancillary chunk) do not stop
     * the decode. */
    (void)png;
    (void)text;
}

static void chunk_name(png_uint_32 type, char name[5])
{
    for (int i = 0; i < 4; i++) {
        int ch = (int)(type >> (24 - 8 * i)) & 0xff;
        name[i] = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ? (char)ch : '?';
    }
    name[4] = '\0';
}

/* Reads with fread and, on a short read, says which chunk the file ends in: libpng's own
 * reader only says "Read Error". */
static void png_on_read(png_structp png, png_bytep data, size_t n)
{
    png_job *job = png_get_io_ptr(png);
    if (fread(data, 1, n, job->f) == n)
        return;
    if (ferror(job->f)) {
        char buf[128];
        job->code = RS_EIO;
        snprintf(job->msg, sizeof job->msg, "cannot read: %s", errno_text(errno, buf, sizeof buf));
    } else {
        char name[5];
        chunk_name(png_get_io_chunk_type(png), name);
        job->code = RS_EFORMAT;
        if ((png_get_io_state(png) & PNG_IO_MASK_LOC) == PNG_IO_CHUNK_HDR)
            /* The chunk name is still the previous chunk's while a header is read. */
            snprintf(job->msg, sizeof job->msg, "truncated PNG (file ends after the %s chunk)", name);
        else
            snprintf(job->msg, sizeof job->msg, "truncated PNG (%s chunk cut short)", name);
    }
    png_error(png, "short read");
}

/* ROW (w pixels of COMPS samples of BYTES bytes) to the sink's float row: the first
 * channel (grey) or the first three (RGB), alpha dropped. */
static void png_row_to_floats(const unsigned char *row, int w, int comps, int bytes, const float *table, sink *k)
{
    for (int x = 0; x < w; x++) {
        const unsigned char *p = row + (size_t)x * comps * bytes;
        for (int c = 0; c < k->c; c++) {
            const unsigned char *s = p + (size_t)c * bytes;
            k->row[(size_t)c * w + x] = bytes == 2 ? (float)((unsigned)s[0] << 8 | s[1]) / 65535.0f : table[s[0]];
        }
    }
}

/* Reads the header, sets up libpng's transforms; fills the layout. */
static int png_header(png_job *job, png_uint_32 *w, png_uint_32 *h, int *passes, int *comps, int *bytes,
                      size_t *rowbytes)
{
    png_structp png = job->png;
    png_infop info = job->info;
    int depth, ctype, interlace;
    png_read_info(png, info);
    png_get_IHDR(png, info, w, h, &depth, &ctype, &interlace, NULL, NULL);
    /* An interlaced image is whole in memory before its first row is complete. */
    unsigned long long cap = interlace != PNG_INTERLACE_NONE ? RS_IMAGE_MAX_INTERLACED : RS_IMAGE_MAX_PIXELS;
    if ((unsigned long long)*w * *h > cap) {
        job->code = RS_EFORMAT;
        snprintf(job->msg, sizeof job->msg, "%sPNG of %ux%u pixels is larger than we accept (%llu pixels)",
                 interlace != PNG_INTERLACE_NONE ? "interlaced " : "", (unsigned)*w, (unsigned)*h, cap);
        return -1;
    }
    /* Every layout becomes 8- or 16-bit grey, grey+alpha, RGB or RGBA; the channel count
     * after png_read_update_info says which, so a tRNS chunk turned into alpha is fine. */
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    *passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    *comps = png_get_channels(png, info);
    *bytes = png_get_bit_depth(png, info) == 16 ? 2 : 1;
    *rowbytes = png_get_rowbytes(png, info);
    if (*comps < 1 || *comps > 4 || *rowbytes < (size_t)*w * *comps * *bytes) {
        job->code = RS_EFORMAT;
        snprintf(job->msg, sizeof job->msg, "unexpected PNG layout (%d channels, %zu bytes a row)", *comps,
                 *rowbytes);
        return -1;
    }
    return 0;
}

static int png_run(png_job *job)
{
    if (setjmp(png_jmpbuf(job->png)))
        return -1;
    png_structp png = job->png;
    png_set_read_fn(png, job, png_on_read);
    png_set_sig_bytes(png, 8);
    png_uint_32 w, h;
    int passes, comps, bytes;
    size_t rowbytes;
    if (png_header(job, &w, &h, &passes, &comps, &bytes, &rowbytes))
        return -1;
    int interlaced = passes > 1;
    job->buf = malloc(rowbytes * (interlaced ? h : 1));
    if (!job->buf) {
        job->code = RS_ENOMEM;
        snprintf(job->msg, sizeof job->msg, "out of memory for a %ux%u image", (unsigned)w, (unsigned)h);
        return -1;
    }
    if ((job->code = sink_begin(job->sink, comps >= 3 ? 3 : 1, (int)h, (int)w, job->msg, sizeof job->msg)))
        return -1;
    if (interlaced) { /* every pass updates every row: the whole image first */
        for (int pass = 0; pass < passes; pass++)
            for (png_uint_32 y = 0; y < h; y++)
                png_read_row(png, job->buf + rowbytes * y, NULL);
    }
    float table[256];
    u8_table(table);
    for (png_uint_32 y = 0; y < h; y++) {
        unsigned char *row = job->buf + (interlaced ? rowbytes * y : 0);
        if (!interlaced)
            png_read_row(png, row, NULL);
        png_row_to_floats(row, (int)w, comps, bytes, table, job->sink);
        sink_put(job->sink, (int)y);
    }
    png_read_end(png, NULL); /* checks the trailing chunks: a file cut after IDAT is caught */
    return 0;
}

/* F is positioned after the 8-byte signature; the caller closes it. */
static int decode_png(const char *path, FILE *f, sink *k, rs_error *err)
{
    png_job job = {.path = path, .f = f, .sink = k};
    job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_on_error, png_on_warning);
    if (job.png)
        job.info = png_create_info_struct(job.png);
    if (!job.png || !job.info) {
        png_destroy_read_struct(job.png ? &job.png : NULL, NULL, NULL);
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory for the PNG decoder", path);
    }
    int rc = png_run(&job);
    png_destroy_read_struct(&job.png, &job.info, NULL);
    free(job.buf);
    if (rc)
        return rs_error_set(err, job.code ? job.code : RS_EFORMAT, "%s: %s", path,
                            job.msg[0] ? job.msg : "corrupt PNG");
    return 0;
}

/* ---- JPEG ----------------------------------------------------------------------------- */

typedef struct jpeg_job {
    struct jpeg_error_mgr pub; /* first, so that cinfo->err leads back to the job */
    jmp_buf jump;
    struct jpeg_decompress_struct cinfo;
    int created;
    JSAMPLE *row;
    sink *sink;
    int code;
    char msg[200];
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_job *job = (jpeg_job *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, text);
    if (!job->msg[0]) {
        job->code = RS_EFORMAT;
        snprintf(job->msg, sizeof job->msg, "corrupt JPEG (%.150s)", text);
    }
    longjmp(job->jump, 1);
}

/* libjpeg reports damaged data as warnings and goes on, padding what it could not decode
 * with grey; a padded image would be analysed as if it were real, so those warnings are
 * errors: the file ends early, the scan ends early (a marker, often the end marker, cuts
 * it short), a bad Huffman or arithmetic code, lost restart sync, a broken progression.
 * Others (e.g. extraneous bytes before a marker, common in photo collections, or an
 * unknown JFIF revision) leave a complete image and are ignored, silently: library code
 * never prints. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    int code = cinfo->err->msg_code;
    if (level != -1)
        return;
    jpeg_job *job = (jpeg_job *)cinfo->err;
    if (code == JWRN_JPEG_EOF) {
        job->code = RS_EFORMAT;
        snprintf(job->msg, sizeof job->msg, "truncated JPEG (the data ends before the image is complete)");
        longjmp(job->jump, 1);
    }
    if (code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_ARITH_BAD_CODE ||
        code == JWRN_MUST_RESYNC || code == JWRN_BOGUS_PROGRESSION || code == JWRN_NOT_SEQUENTIAL) {
        char text[JMSG_LENGTH_MAX];
        cinfo->err->format_message(cinfo, text);
        const char *prefix = "Corrupt JPEG data: ";
        const char *what = strncmp(text, prefix, strlen(prefix)) ? text : text + strlen(prefix);
        job->code = RS_EFORMAT;
        snprintf(job->msg, sizeof job->msg, "corrupt JPEG data (%.150s)", what);
        longjmp(job->jump, 1);
    }
}

/* Reads the header, chooses the output colour space and, for a decompression bomb when
 * fitting, the DCT scale; 0 or -1 with the job's message set. */
static int jpeg_header(jpeg_job *job)
{
    struct jpeg_decompress_struct *ci = &job->cinfo;
    jpeg_read_header(ci, TRUE);
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE: ci->out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: ci->out_color_space = JCS_RGB; break;
    default:
        job->code = RS_EFORMAT;
        snprintf(job->msg, sizeof job->msg, "JPEG colour space %s is not supported (grey, RGB and YCbCr are)",
                 ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK ? "CMYK" : "unknown");
        return -1;
    }
    if ((unsigned long long)ci->image_width * ci->image_height > RS_IMAGE_MAX_PIXELS) {
        job->code = RS_EFORMAT;
        snprintf(job->msg, sizeof job->msg, "JPEG of %ux%u pixels is larger than we accept (%llu pixels)",
                 (unsigned)ci->image_width, (unsigned)ci->image_height, (unsigned long long)RS_IMAGE_MAX_PIXELS);
        return -1;
    }
    /* More than 8 times the target on both sides: libjpeg's IDCT decodes at 1/8 scale,
     * still larger than the target, so the fit only downsamples less. Every other image
     * decodes at full size and fits bit for bit as before. */
    const sink *k = job->sink;
    if (k->target_c > 0 && ci->image_width > 8ull * k->target_w && ci->image_height > 8ull * k->target_h) {
        ci->scale_num = 1;
        ci->scale_denom = 8;
    }
    return 0;
}

static int jpeg_run(jpeg_job *job, FILE *f)
{
    if (setjmp(job->jump))
        return -1;
    struct jpeg_decompress_struct *ci = &job->cinfo;
    jpeg_create_decompress(ci);
    job->created = 1;
    jpeg_stdio_src(ci, f);
    if (jpeg_header(job))
        return -1;
    jpeg_start_decompress(ci);
    unsigned w = ci->output_width, h = ci->output_height;
    int comps = ci->output_components;
    if (comps != 1 && comps != 3) {
        job->code = RS_EFORMAT;
        snprintf(job->msg, sizeof job->msg, "JPEG decodes to %d components", comps);
        return -1;
    }
    job->row = malloc((size_t)w * comps);
    if (!job->row) {
        job->code = RS_ENOMEM;
        snprintf(job->msg, sizeof job->msg, "out of memory for a %ux%u image", w, h);
        return -1;
    }
    if ((job->code = sink_begin(job->sink, comps, (int)h, (int)w, job->msg, sizeof job->msg)))
        return -1;
    float table[256];
    u8_table(table);
    float *row = job->sink->row;
    while (ci->output_scanline < h) {
        size_t y = ci->output_scanline;
        JSAMPROW rows[1] = {job->row};
        if (jpeg_read_scanlines(ci, rows, 1) != 1) {
            job->code = RS_EFORMAT;
            snprintf(job->msg, sizeof job->msg, "truncated JPEG (scanline %zu missing)", y);
            return -1;
        }
        for (unsigned x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                row[(size_t)c * w + x] = table[job->row[(size_t)x * comps + c]];
        sink_put(job->sink, (int)y);
    }
    jpeg_finish_decompress(ci);
    return 0;
}

static int decode_jpeg(const char *path, FILE *f, sink *k, rs_error *err)
{
    jpeg_job *job = calloc(1, sizeof *job); /* jmp_buf and the decompressor are large */
    if (!job)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory for the JPEG decoder", path);
    job->sink = k;
    job->cinfo.err = jpeg_std_error(&job->pub);
    job->pub.error_exit = jpeg_on_error;
    job->pub.emit_message = jpeg_on_message;
    int rc = jpeg_run(job, f);
    if (job->created)
        jpeg_destroy_decompress(&job->cinfo);
    free(job->row);
    if (rc)
        rc = rs_error_set(err, job->code ? job->code : RS_EFORMAT, "%s: %s", path,
                          job->msg[0] ? job->msg : "corrupt JPEG");
    free(job);
    return rc;
}

/* Decodes PATH into the sink, chosen by the file's first bytes. */
static int decode(const char *path, sink *k, rs_error *err)
{
    char buf[128];
    FILE *f = fopen(path, "rb");
    if (!f)
        return rs_error_set(err, RS_EIO, "%s: cannot open: %s", path, errno_text(errno, buf, sizeof buf));
    unsigned char magic[8];
    size_t got = fread(magic, 1, sizeof magic, f);
    int rc;
    if (ferror(f))
        rc = rs_error_set(err, RS_EIO, "%s: cannot read: %s", path, errno_text(errno, buf, sizeof buf));
    else if (got == 8 && png_sig_cmp(magic, 0, 8) == 0)
        rc = decode_png(path, f, k, err);
    else if (got >= 3 && magic[0] == 0xff && magic[1] == 0xd8 && magic[2] == 0xff) {
        rewind(f);
        rc = decode_jpeg(path, f, k, err);
    } else if (got < 8 && got > 0 && png_sig_cmp(magic, 0, got) == 0)
        rc = rs_error_set(err, RS_EFORMAT, "%s: truncated PNG (signature cut short)", path);
    else
        rc = rs_error_set(err, RS_EFORMAT, "%s: not a PNG or JPEG file%s", path, got ? "" : " (empty)");
    fclose(f);
    return rc;
}

int rs_image_decode(const char *path, rs_image *out, rs_error *err)
{
    *out = (rs_image){0};
    sink k = {0};
    int rc = decode(path, &k, err);
    if (!rc)
        sink_finish(&k, out);
    sink_free(&k);
    return rc;
}

int rs_image_read_fit(const char *path, int channels, int height, int width, float *out, rs_error *err)
{
    sink k = {.target_c = channels, .target_h = height, .target_w = width, .target = out};
    if (channels < 1 || height < 1 || width < 1)
        return rs_error_set(err, RS_EINVAL, "%s: cannot fit an image to %dx%dx%d", path, height, width, channels);
    int rc = decode(path, &k, err);
    if (!rc)
        sink_finish(&k, NULL);
    sink_free(&k);
    return rc;
}

/* ---- fitting -------------------------------------------------------------------------- */

static int check_fit_msg(int c, int h, int w, int channels, int height, int width, char *msg, size_t n)
{
    if (c != 1 && c != 3) {
        snprintf(msg, n, "images of %d channels cannot be fitted", c);
        return RS_EINVAL;
    }
    if (h < 1 || w < 1 || channels < 1 || height < 1 || width < 1) {
        snprintf(msg, n, "cannot fit a %dx%d image to %dx%dx%d", h, w, height, width, channels);
        return RS_EINVAL;
    }
    if (c == 3 && channels != 1 && channels != 3) {
        snprintf(msg, n, "RGB images cannot be fitted to %d channels (1 or 3)", channels);
        return RS_EINVAL;
    }
    return 0;
}

static int check_fit(int c, int h, int w, int channels, int height, int width, const char *name, rs_error *err)
{
    char msg[160];
    int rc = check_fit_msg(c, h, w, channels, height, width, msg, sizeof msg);
    return rc ? rs_error_set(err, rc, "%s: %s", name, msg) : 0;
}

/* The fit of a float image whose channels check_fit accepted; NAME labels errors. */
static int fit(const float *pixels, int c, int h, int w, int channels, int height, int width, float *out,
               const char *name, rs_error *err)
{
    size_t plane = (size_t)h * w, oplane = (size_t)height * width;
    float *luma = NULL;
    const float *src = pixels;
    int planes = c; /* source planes to resize: 1 for grey or luma, 3 for RGB -> RGB */
    if (c == 3 && channels == 1) {
        if (!(luma = malloc(sizeof(float) * plane)))
            return rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
        for (size_t p = 0; p < plane; p++)
            luma[p] = 0.299f * pixels[p] + 0.587f * pixels[plane + p] + 0.114f * pixels[2 * plane + p];
        src = luma;
        planes = 1;
    }
    if (h == height && w == width) {
        memcpy(out, src, sizeof(float) * plane * planes); /* exact: no resampling */
    } else {
        tap *ty = malloc(sizeof(tap) * ((size_t)height + width));
        if (!ty) {
            free(luma);
            return rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
        }
        tap *tx = ty + height;
        double s = fmax((double)height / h, (double)width / w);
        make_taps(h, height, s, ty);
        make_taps(w, width, s, tx);
        for (int p = 0; p < planes; p++)
            resize_plane(src + p * plane, w, ty, height, tx, width, out + p * oplane);
        free(ty);
    }
    for (int p = planes; p < channels; p++) /* grey replicated after resizing: once is enough */
        memcpy(out + p * oplane, out, sizeof(float) * oplane);
    free(luma);
    return 0;
}

int rs_image_fit(const rs_image *im, int channels, int height, int width, float *out, const char *name,
                 rs_error *err)
{
    int rc = check_fit(im->channels, im->height, im->width, channels, height, width, name, err);
    return rc ? rc : fit(im->pixels, im->channels, im->height, im->width, channels, height, width, out, name, err);
}

int rs_image_fit_u8(const uint8_t *pixels, int c, int h, int w, int channels, int height, int width, float *out,
                    const char *name, rs_error *err)
{
    int rc = check_fit(c, h, w, channels, height, width, name, err);
    if (rc)
        return rc;
    size_t n = (size_t)c * h * w;
    float table[256];
    u8_table(table);
    if (h == height && w == width && (c == channels || c == 1)) {
        /* The common case (Fashion-MNIST, CIFAR at their own size) without a float copy;
         * v/255.0f are the operations of the PyTorch reference. */
        size_t oplane = (size_t)height * width;
        for (size_t i = 0; i < n; i++)
            out[i] = table[pixels[i]];
        for (int p = c; p < channels; p++)
            memcpy(out + p * oplane, out, sizeof(float) * oplane);
        return 0;
    }
    float *f = malloc(sizeof(float) * n);
    if (!f)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < n; i++)
        f[i] = table[pixels[i]];
    rc = fit(f, c, h, w, channels, height, width, out, name, err);
    free(f);
    return rc;
}

