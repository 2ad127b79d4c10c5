/* render.h — what the renderers share: output surfaces chosen by file extension, colour
 * maps, text, and one image's routing read from the store.
 *
 * Output: PATH ending in .png (ARGB image, RS_RENDER_PNG_SCALE pixels per drawing unit),
 * .pdf (one page; creation date pinned so the same input gives the same bytes) or .svg.
 * Drawing units are PDF points. Text uses cairo's toy font API with "DejaVu Sans" (the
 * Debian package fonts-dejavu-core; fontconfig falls back to any sans-serif face).
 * One image's records come from analyze/store/run.h (rs_image_routing).
 *
 * Errors: RS_EINVAL for an unknown extension, RS_EIO when the file cannot be written (the
 * message names it), RS_ENOMEM. Nothing is printed. */
#ifndef RS_RENDER_H
#define RS_RENDER_H

#include <cairo.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rs_error.h"
#include "store/run.h"
#include "store/store.h"

#define RS_RENDER_PNG_SCALE 2.0
/* The largest PNG side in pixels; a larger figure is drawn at a smaller scale. */
#define RS_RENDER_PNG_MAX_SIDE 32000.0
#define RS_RENDER_FONT "DejaVu Sans"
/* The creation date written into every PDF (reproducible bytes). */
#define RS_RENDER_PDF_DATE "2024-01-01T00:00:00Z"

typedef enum rs_render_format { RS_RENDER_PNG, RS_RENDER_PDF, RS_RENDER_SVG } rs_render_format;

/* The format named by PATH's extension (case-insensitive); RS_EINVAL for others. */
int rs_render_format_of(const char *path, rs_render_format *fmt, rs_error *err);

/* A drawing of WIDTH x HEIGHT units going to PATH. */
typedef struct rs_canvas {
    cairo_surface_t *surface;
    cairo_t *cr;
    rs_render_format format;
    double width, height, scale; /* scale: output pixels per unit (PNG), else 1 */
    const char *path;
} rs_canvas;

/* Opens the surface, paints it white and sets the font. */
int rs_canvas_open(rs_canvas *cv, const char *path, double width, double height, rs_error *err);
/* Writes the file (PNG) or finishes it (PDF, SVG) and releases everything; reports any
 * cairo error. rs_canvas_discard releases without checking (error paths). */
int rs_canvas_close(rs_canvas *cv, rs_error *err);
void rs_canvas_discard(rs_canvas *cv);

/* Colour of expert E of NUM_EXPERTS: Paul Tol's colour-blind-safe "muted" scheme (plus
 * its pale grey) for NUM_EXPERTS <= 10, evenly spaced hues with alternating lightness
 * beyond. rgb in [0,1]. */
void rs_palette_expert(int e, int num_experts, double rgb[3]);
/* Colour of series I of N (runs in a plot): the same "muted" colours ordered so that
 * neighbours differ most (indigo, rose, teal, sand, wine, sky, green, olive, purple),
 * without the pale grey; rs_palette_expert's hues beyond nine. */
void rs_palette_series(int i, int n, double rgb[3]);
/* Colour of a run in a plot, the one palette of runs: hue = training method
 * (analyze/store/run.h rs_run_method: V-MoE blue, PRC orange, JSD green, adversarial purple,
 * other grey; apart from the expert colours), SHADE in [0,1] from its darkest (0) to its
 * lightest (1) tone (clamped). Plots of single runs shade by k, plots of groups by seed. */
void rs_palette_method(rs_method m, double shade, double rgb[3]);

/* A viridis-like sequential map, T in [0,1] (clamped). */
void rs_palette_viridis(double t, double rgb[3]);
/* Black or white, whichever reads better on RGB. */
void rs_palette_text_on(const double rgb[3], double out[3]);

/* Text helpers: the string's advance width at SIZE; draws TEXT with its baseline at Y,
 * anchored left (align 0), centred (0.5) or right (1) at X. */
double rs_text_width(cairo_t *cr, double size, bool bold, const char *text);
void rs_text(cairo_t *cr, double x, double y, double size, bool bold, double align, const char *text);
/* Diagonal hatching of the rectangle (X, Y, W, H). */
void rs_hatch(cairo_t *cr, double x, double y, double w, double h, double spacing);

/* What a figure says about its run, filled by the caller (all may be NULL / 0). */
typedef struct rs_render_context {
    const rs_run_info *run;
    const char *const *class_names; /* num_classes names, or NULL: numbers */
    int num_classes;
    /* View pixels (V, C, H, W) in [0,1]: the thumbnails of grids and heatmaps; or NULL. */
    const float *pixels;
    int channels, height, width;
    /* The stored view number of each drawn view (a figure of some views of a run; its RUN
     * then lists those views' specs), or NULL: 0, 1, 2, ... */
    const int *view_numbers;
} rs_render_context;

/* CTX for image IMAGE of RUN: the run, its class names, and the pixels of its views redrawn
 * from the run's data (analyze/store/run.h, rs_run_view_pixels) into *PIXELS, owned by the caller
 * (free()). When the data cannot be read, *PIXELS stays NULL, CTX is still usable (figures
 * are drawn without the image) and the error says why. */
int rs_render_context_of_run(const rs_run_info *run, int image, rs_render_context *ctx, float **pixels,
                             rs_error *err);

/* Narrows a figure of one image to views VIEWS[0..N) of CTX->run (ascending, VIEWS[0] = 0,
 * each below the run's views): R keeps those views (rs_image_routing_keep_views), PIXELS
 * (CTX's, or NULL) is compacted in place to them, and CTX then names the run SHOWN (a copy
 * of CTX->run listing only those views' specs, from SPECS: the caller's N entries) with the
 * stored view numbers VIEWS. SHOWN, SPECS and VIEWS must outlive CTX's use. A figure of a
 * run with many views (76 in the corruption protocol) draws some of them. */
void rs_render_keep_views(rs_image_routing *r, rs_render_context *ctx, float *pixels, const int *views, int n,
                          rs_run_info *shown, char **specs);

/* "NAME" or the class number as text into BUF. */
const char *rs_render_class_name(const rs_render_context *ctx, int cls, char *buf, size_t size);

/* True when view V of RUN is attacked (its spec has a pgd operation), with the attack's ε
 * in *EPS when EPS is not NULL. Its image in CTX is then the pixels the attack started
 * from: rs_run_view_pixels cannot redo the attack without the model. Figures that draw it
 * say so with RS_RENDER_START_PIXELS. False for a NULL RUN or a spec that does not parse. */
bool rs_render_view_attacked(const rs_run_info *run, int v, double *eps);
#define RS_RENDER_START_PIXELS "start pixels; attack not redrawn"

/* Draws view V's image of CTX (if any) into the rectangle (X, Y, W, H), at ALPHA. */
void rs_render_view_image(cairo_t *cr, const rs_render_context *ctx, int v, double x, double y, double w,
                          double h, double alpha);

#endif
