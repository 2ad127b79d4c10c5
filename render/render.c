/* render.c — surfaces, palettes, text and one image's routing (see render.h). */
#include "render.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "input/spec_text.h"

int rs_render_format_of(const char *path, rs_render_format *fmt, rs_error *err)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (dot && !strcasecmp(dot, ".png"))
        *fmt = RS_RENDER_PNG;
    else if (dot && !strcasecmp(dot, ".pdf"))
        *fmt = RS_RENDER_PDF;
    else if (dot && !strcasecmp(dot, ".svg"))
        *fmt = RS_RENDER_SVG;
    else
        return rs_error_set(err, RS_EINVAL, "%s: output must end in .png, .pdf or .svg", path ? path : "(null)");
    return 0;
}

int rs_canvas_open(rs_canvas *cv, const char *path, double width, double height, rs_error *err)
{
    memset(cv, 0, sizeof *cv);
    int rc = rs_render_format_of(path, &cv->format, err);
    if (rc)
        return rc;
    cv->path = path;
    cv->width = width;
    cv->height = height;
    cv->scale = 1.0;
    switch (cv->format) {
    case RS_RENDER_PNG:
        /* cairo's image surfaces stop at 32,767 pixels a side: a figure wider than that at
           the usual scale (a grid of a corruptions run's 76 views) gets fewer pixels per unit */
        cv->scale = fmin(RS_RENDER_PNG_SCALE, RS_RENDER_PNG_MAX_SIDE / fmax(width, height));
        cv->surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)ceil(width * cv->scale),
                                                 (int)ceil(height * cv->scale));
        break;
    case RS_RENDER_PDF:
        cv->surface = cairo_pdf_surface_create(path, width, height);
        if (cairo_surface_status(cv->surface) == CAIRO_STATUS_SUCCESS) {
            cairo_pdf_surface_set_metadata(cv->surface, CAIRO_PDF_METADATA_CREATE_DATE, RS_RENDER_PDF_DATE);
            cairo_pdf_surface_set_metadata(cv->surface, CAIRO_PDF_METADATA_CREATOR, "routerscope");
        }
        break;
    case RS_RENDER_SVG:
        cv->surface = cairo_svg_surface_create(path, width, height);
        break;
    }
    cairo_status_t st = cairo_surface_status(cv->surface);
    if (st != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(cv->surface);
        cv->surface = NULL;
        return rs_error_set(err, st == CAIRO_STATUS_NO_MEMORY ? RS_ENOMEM : RS_EIO, "%s: cannot create: %s", path,
                            cairo_status_to_string(st));
    }
    cv->cr = cairo_create(cv->surface);
    cairo_scale(cv->cr, cv->scale, cv->scale);
    cairo_set_source_rgb(cv->cr, 1, 1, 1);
    cairo_paint(cv->cr);
    cairo_select_font_face(cv->cr, RS_RENDER_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return 0;
}

void rs_canvas_discard(rs_canvas *cv)
{
    if (cv->cr)
        cairo_destroy(cv->cr);
    if (cv->surface)
        cairo_surface_destroy(cv->surface);
    cv->cr = NULL;
    cv->surface = NULL;
}

int rs_canvas_close(rs_canvas *cv, rs_error *err)
{
    cairo_status_t st = cairo_status(cv->cr);
    cairo_destroy(cv->cr);
    cv->cr = NULL;
    if (st == CAIRO_STATUS_SUCCESS && cv->format == RS_RENDER_PNG)
        st = cairo_surface_write_to_png(cv->surface, cv->path);
    if (st == CAIRO_STATUS_SUCCESS) {
        cairo_surface_finish(cv->surface);
        st = cairo_surface_status(cv->surface);
    }
    cairo_surface_destroy(cv->surface);
    cv->surface = NULL;
    if (st != CAIRO_STATUS_SUCCESS)
        return rs_error_set(err, st == CAIRO_STATUS_NO_MEMORY ? RS_ENOMEM : RS_EIO, "%s: cannot write: %s", cv->path,
                            cairo_status_to_string(st));
    return 0;
}

static void hex_rgb(unsigned hex, double rgb[3])
{
    rgb[0] = ((hex >> 16) & 0xff) / 255.0;
    rgb[1] = ((hex >> 8) & 0xff) / 255.0;
    rgb[2] = (hex & 0xff) / 255.0;
}

static void hsl_rgb(double h, double s, double l, double rgb[3])
{
    double c = (1 - fabs(2 * l - 1)) * s, hp = fmod(h, 1.0) * 6, x = c * (1 - fabs(fmod(hp, 2) - 1));
    double r = 0, g = 0, b = 0;
    if (hp < 1) r = c, g = x;
    else if (hp < 2) r = x, g = c;
    else if (hp < 3) g = c, b = x;
    else if (hp < 4) g = x, b = c;
    else if (hp < 5) r = x, b = c;
    else r = c, b = x;
    double m0 = l - c / 2;
    rgb[0] = r + m0, rgb[1] = g + m0, rgb[2] = b + m0;
}

void rs_palette_expert(int e, int num_experts, double rgb[3])
{
    /* Paul Tol, "muted" (colour-blind safe), then its pale grey as the tenth. */
    static const unsigned muted[10] = {0x332288, 0x88CCEE, 0x44AA99, 0x117733, 0x999933,
                                       0xDDCC77, 0xCC6677, 0x882255, 0xAA4499, 0xDDDDDD};
    if (num_experts <= 10 && e >= 0 && e < 10) {
        hex_rgb(muted[e], rgb);
        return;
    }
    if (num_experts < 1)
        num_experts = 1;
    double h = (double)((e % num_experts) + num_experts) / num_experts;
    hsl_rgb(h, 0.55, (e % 2) ? 0.72 : 0.45, rgb);
}

void rs_palette_series(int i, int n, double rgb[3])
{
    static const int order[9] = {0, 6, 2, 5, 7, 1, 3, 4, 8};
    if (n <= 9 && i >= 0 && i < 9)
        rs_palette_expert(order[i], 10, rgb);
    else
        rs_palette_expert(i, n > 10 ? n : 11, rgb);
}

void rs_palette_method(rs_method m, double shade, double rgb[3])
{
    /* dark and light end of each method's hue (ColorBrewer's sequential blues, oranges,
       greens, purples, red-purples, greys): outside the expert palette's muted tones, so a run is never
       read as an expert; indexed by rs_method */
    static const unsigned ends[RS_METHOD_COUNT][2] = {{0x3C3C3C, 0x9A9A9A}, {0x08519C, 0x6BAED6},
                                                      {0xA63603, 0xFDAE6B}, {0x006D2C, 0x74C476},
                                                      {0x54278F, 0x9E9AC8}, {0x7A0177, 0xF768A1}};
    double t = shade > 0 ? shade < 1 ? shade : 1 : 0, a[3], b[3];
    int i = m >= 0 && m < RS_METHOD_COUNT ? (int)m : RS_METHOD_OTHER;
    hex_rgb(ends[i][0], a);
    hex_rgb(ends[i][1], b);
    for (int c = 0; c < 3; c++)
        rgb[c] = a[c] + (b[c] - a[c]) * t;
}

void rs_palette_viridis(double t, double rgb[3])
{
    /* Viridis sampled at 9 points, linearly interpolated. */
    static const unsigned stops[9] = {0x440154, 0x472D7B, 0x3B528B, 0x2C728E, 0x21918C,
                                      0x28AE80, 0x5EC962, 0xADDC30, 0xFDE725};
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double p = t * 8;
    int i = (int)p;
    if (i > 7) i = 7;
    double f = p - i, a[3], b[3];
    hex_rgb(stops[i], a);
    hex_rgb(stops[i + 1], b);
    for (int k = 0; k < 3; k++)
        rgb[k] = a[k] + (b[k] - a[k]) * f;
}

void rs_palette_text_on(const double rgb[3], double out[3])
{
    double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
    double v = lum > 0.45 ? 0.0 : 1.0;
    out[0] = out[1] = out[2] = v;
}

double rs_text_width(cairo_t *cr, double size, bool bold, const char *text)
{
    cairo_select_font_face(cr, RS_RENDER_FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    /* unhinted advances scale with the surface: a width measured before the figure's
       surface exists (at scale 1) holds when drawn on the PNG's 2x surface or in a PDF */
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
    cairo_text_extents_t ext;
    cairo_text_extents(cr, text, &ext);
    return ext.x_advance;
}

void rs_text(cairo_t *cr, double x, double y, double size, bool bold, double align, const char *text)
{
    double w = rs_text_width(cr, size, bold, text);
    cairo_move_to(cr, x - w * align, y);
    cairo_show_text(cr, text);
    cairo_new_path(cr);
}

void rs_hatch(cairo_t *cr, double x, double y, double w, double h, double spacing)
{
    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_clip(cr);
    for (double d = -h; d < w; d += spacing) {
        cairo_move_to(cr, x + d, y + h);
        cairo_line_to(cr, x + d + h, y);
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}

int rs_render_context_of_run(const rs_run_info *run, int image, rs_render_context *ctx, float **pixels,
                             rs_error *err)
{
    *ctx = (rs_render_context){.run = run, .class_names = (const char *const *)run->class_names,
                               .num_classes = run->num_class_names};
    int rc = rs_run_view_pixels(run, image, pixels, err);
    if (!rc)
        ctx->pixels = *pixels, ctx->channels = run->channels, ctx->height = run->image_h, ctx->width = run->image_w;
    return rc;
}

void rs_render_keep_views(rs_image_routing *r, rs_render_context *ctx, float *pixels, const int *views, int n,
                          rs_run_info *shown, char **specs)
{
    const rs_run_info *run = ctx->run;
    for (int i = 0; i < n; i++)
        specs[i] = run->view_specs[views[i]];
    *shown = *run;
    shown->view_specs = specs, shown->num_views = n;
    rs_image_routing_keep_views(r, views, n);
    size_t view_px = (size_t)ctx->channels * ctx->height * ctx->width;
    for (int i = 0; pixels && i < n; i++)
        memmove(pixels + i * view_px, pixels + views[i] * view_px, view_px * sizeof *pixels);
    ctx->run = shown, ctx->view_numbers = views;
}

const char *rs_render_class_name(const rs_render_context *ctx, int cls, char *buf, size_t size)
{
    if (cls < 0)
        snprintf(buf, size, "?");
    else if (ctx && ctx->class_names && cls < ctx->num_classes && ctx->class_names[cls])
        snprintf(buf, size, "%d %s", cls, ctx->class_names[cls]);
    else
        snprintf(buf, size, "%d", cls);
    return buf;
}

bool rs_render_view_attacked(const rs_run_info *run, int v, double *eps)
{
    rs_error ignored; /* a spec that does not parse is drawn as any other view */
    double e;
    bool attacked = run && run->view_specs && v >= 0 && v < run->num_views &&
                    rs_spec_attack_eps(run->view_specs[v], &e, &ignored) == 1;
    if (attacked && eps)
        *eps = e;
    return attacked;
}

void rs_render_view_image(cairo_t *cr, const rs_render_context *ctx, int v, double x, double y, double w,
                          double h, double alpha)
{
    if (!ctx || !ctx->pixels || ctx->width <= 0 || ctx->height <= 0 || ctx->channels <= 0)
        return;
    int W = ctx->width, H = ctx->height, C = ctx->channels;
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        return;
    }
    cairo_surface_flush(img);
    unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    const float *px = ctx->pixels + (size_t)v * C * H * W;
    for (int i = 0; i < H; i++) {
        uint32_t *rowp = (uint32_t *)(void *)(data + (size_t)i * stride);
        for (int j = 0; j < W; j++) {
            unsigned ch[3];
            for (int k = 0; k < 3; k++) {
                float f = px[((size_t)(C >= 3 ? k : 0) * H + i) * W + j];
                f = f < 0 ? 0 : f > 1 ? 1 : f;
                ch[k] = (unsigned)lrintf(f * 255.0f);
            }
            rowp[j] = (ch[0] << 16) | (ch[1] << 8) | ch[2];
        }
    }
    cairo_surface_mark_dirty(img);
    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_clip(cr);
    cairo_translate(cr, x, y);
    cairo_scale(cr, w / W, h / H);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_paint_with_alpha(cr, alpha);
    cairo_restore(cr);
    cairo_surface_destroy(img);
}
