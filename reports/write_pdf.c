/* write_pdf.c — the document (doc.h) as a landscape A4 PDF: the title, then the sections
 * with the contents' page numbers (a first pass finds them), tables as monospaced text
 * scaled to the page width, figures from their PNGs sized to the page, side by side where
 * they fit, each kept with its caption; headings kept with what follows. */
#include <cairo-pdf.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doc.h"
#include "render.h"

#define PAGE_W 842.0 /* A4 landscape, points */
#define PAGE_H 595.0
#define PAGE_M 36.0
#define MONO "DejaVu Sans Mono"

typedef struct pdf {
    cairo_t *cr;
    double y;
    int page;
    double row_x, row_h;    /* figures side by side: where the next one goes, the row's height */
    int *h2_page;           /* per item: the page of each section heading (the contents' numbers) */
} pdf;

static const double AVAIL_W = PAGE_W - 2 * PAGE_M, AVAIL_H = PAGE_H - 2 * PAGE_M - 14;

static void pdf_footer(pdf *p)
{
    char buf[64];
    snprintf(buf, sizeof buf, "page %d", p->page);
    cairo_set_source_rgb(p->cr, 0.4, 0.4, 0.4);
    rs_text(p->cr, PAGE_W - PAGE_M, PAGE_H - PAGE_M / 2, 8, false, 1, buf);
    cairo_set_source_rgb(p->cr, 0, 0, 0);
}

/* Ends a row of figures: the next item starts below it. */
static void pdf_end_row(pdf *p)
{
    if (p->row_x > 0)
        p->y += p->row_h;
    p->row_x = p->row_h = 0;
}

static void pdf_new_page(pdf *p)
{
    p->row_x = p->row_h = 0;
    pdf_footer(p);
    cairo_show_page(p->cr);
    p->page++;
    p->y = PAGE_M;
}

/* A new page unless H more points fit on this one (inside a row of figures: below its top). */
static void pdf_need(pdf *p, double h)
{
    if (p->y + h > PAGE_H - PAGE_M && p->y > PAGE_M + 1)
        pdf_new_page(p);
}

/* Wrapped text in the sans face at SIZE, lines of at most the page width. */
/* The lines TEXT takes at SIZE within MAXW; drawn at (X, y) when DRAW. */
static int wrap_lines(pdf *p, const char *text, double size, bool bold, double x, double maxw, bool draw);

static void pdf_wrap(pdf *p, const char *text, double size, bool bold, double indent)
{
    pdf_end_row(p);
    wrap_lines(p, text, size, bold, PAGE_M + indent, PAGE_W - 2 * PAGE_M - indent, true);
}

static int wrap_lines(pdf *p, const char *text, double size, bool bold, double x, double maxw, bool draw)
{
    int lines = 0;
    char line[2048];
    const char *s = text;
    while (*s) {
        /* the longest prefix that fits, broken at a space when there is one */
        size_t n = strlen(s), best = 0, last_space = 0;
        for (size_t k = 1; k <= n && k < sizeof line; k++) {
            if ((s[k - 1] & 0xC0) == 0x80 && k < n && (s[k] & 0xC0) == 0x80)
                continue;
            if (k < n && (s[k] & 0xC0) == 0x80)
                continue;
            memcpy(line, s, k);
            line[k] = 0;
            if (rs_text_width(p->cr, size, bold, line) > maxw)
                break;
            best = k;
            if (s[k - 1] == ' ' || s[k - 1] == '/' || s[k - 1] == ';')
                last_space = k;
        }
        if (best == 0)
            best = 1;
        if (best < n && last_space > best / 2)
            best = last_space;
        memcpy(line, s, best);
        line[best] = 0;
        lines++;
        if (draw) {
            pdf_need(p, size * 1.35);
            p->y += size * 1.1;
            rs_text(p->cr, x, p->y, size, bold, 0, line);
            p->y += size * 0.25;
        }
        s += best;
        while (*s == ' ')
            s++;
    }
    return lines;
}

static void pdf_table(pdf *p, const char *md)
{
    pdf_end_row(p);
    cairo_t *cr = p->cr;
    /* font size: the widest line fits the page */
    double size = 8.0, maxw = 0;
    cairo_select_font_face(cr, MONO, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    const char *rest = md, *q;
    size_t n;
    while (rs_doc_next_line(&rest, &q, &n)) {
        if (n && *q == '|') {
            char line[4096];
            snprintf(line, sizeof line, "%.*s", (int)n, q);
            cairo_text_extents_t ext;
            cairo_text_extents(cr, line, &ext);
            if (ext.x_advance > maxw)
                maxw = ext.x_advance;
        }
    }
    if (maxw > PAGE_W - 2 * PAGE_M)
        size *= (PAGE_W - 2 * PAGE_M) / maxw;
    rest = md;
    while (rs_doc_next_line(&rest, &q, &n)) {
        char line[4096];
        snprintf(line, sizeof line, "%.*s", (int)n, q);
        if (!strncmp(line, "### ", 4)) {
            pdf_need(p, 60);
            p->y += 4;
            pdf_wrap(p, line + 4, 10, true, 0);
            p->y += 3;
        } else if (line[0] == '|') {
            pdf_need(p, size * 1.3);
            p->y += size * 1.2;
            cairo_select_font_face(cr, MONO, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
            cairo_set_font_size(cr, size);
            cairo_move_to(cr, PAGE_M, p->y);
            cairo_show_text(cr, line);
        } else if (line[0]) {
            cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            pdf_wrap(p, line, 7.5, false, 0);
            cairo_set_source_rgb(cr, 0, 0, 0);
        }
    }
    p->y += 10;
}

#define CAPTION_SIZE 8.0
#define CAPTION_LINE (CAPTION_SIZE * 1.35)

/* The figure's size on the page (points) at scale S, and its caption's lines at that width. */
static void figure_fit(pdf *p, const rs_doc_item *it, double w, double h, double *s, int *cap_lines)
{
    /* a grid of two views goes two to a row: half the page still shows its digits */
    double maxw = strstr(it->file, "/grid-") && w < AVAIL_W * 1.3 ? AVAIL_W / 2 - 14 : AVAIL_W;
    *s = fmin(1.0, fmin(maxw / w, (AVAIL_H - 3 * CAPTION_LINE) / h));
    *cap_lines = wrap_lines(p, it->text, CAPTION_SIZE, false, 0, fmax(w * *s, 240), false);
    *s = fmin(*s, (AVAIL_H - *cap_lines * CAPTION_LINE - 8) / h);
}

/* A figure with its caption under it, never split: beside the previous figure when both
 * fit the width, else below; on a new page when the rest of this one is too short even
 * at three quarters of its size. */
static void pdf_figure(pdf *p, const char *dir, const rs_doc_item *it)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, it->file);
    cairo_surface_t *img = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        pdf_wrap(p, "(figure missing)", 9, false, 0);
        return;
    }
    double w = cairo_image_surface_get_width(img) / RS_RENDER_PNG_SCALE;
    double h = cairo_image_surface_get_height(img) / RS_RENDER_PNG_SCALE;
    double s;
    int cap;
    figure_fit(p, it, w, h, &s, &cap);
    double cap_w = fmax(w * s, 240), box_w = cap_w + 14;
    if (p->row_x > 0 && p->row_x + box_w > AVAIL_W + 14)
        pdf_end_row(p);
    double room = PAGE_H - PAGE_M - 14 - p->y - 4 - cap * CAPTION_LINE - 8;
    if (h * s > room) {
        if (room >= 0.75 * h * s && p->row_x == 0)
            s = room / h;
        else if (p->row_x == 0 || room < h * s)
            pdf_new_page(p);
    }
    double x = PAGE_M + p->row_x, y0 = p->y;
    cairo_save(p->cr);
    cairo_translate(p->cr, x, y0 + 4);
    cairo_scale(p->cr, s / RS_RENDER_PNG_SCALE, s / RS_RENDER_PNG_SCALE);
    cairo_set_source_surface(p->cr, img, 0, 0);
    cairo_paint(p->cr);
    cairo_restore(p->cr);
    cairo_surface_destroy(img);
    p->y = y0 + h * s + 6;
    cairo_set_source_rgb(p->cr, 0.3, 0.3, 0.3);
    wrap_lines(p, it->text, CAPTION_SIZE, false, x, cap_w, true);
    cairo_set_source_rgb(p->cr, 0, 0, 0);
    double used = p->y - y0 + 8;
    p->y = y0;
    p->row_h = fmax(p->row_h, used);
    p->row_x += box_w;
}

/* The height the item after a heading needs on the heading's page (a heading is never
 * left alone at the foot of a page). */
static double keep_with(pdf *p, const rs_doc *d, int i)
{
    if (i + 1 >= d->n)
        return 0;
    const rs_doc_item *next = &d->items[i + 1];
    if (next->kind == RS_DOC_PARA && i + 2 < d->n && d->items[i + 2].kind != RS_DOC_H2)
        return keep_with(p, d, i + 1) + wrap_lines(p, next->text, 9.5, false, 0, AVAIL_W, false) * 12.8;
    if (next->kind == RS_DOC_FIGURE) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", d->dir, next->file);
        cairo_surface_t *img = cairo_image_surface_create_from_png(path);
        double need = 60;
        if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
            double s, w = cairo_image_surface_get_width(img) / RS_RENDER_PNG_SCALE,
                      h = cairo_image_surface_get_height(img) / RS_RENDER_PNG_SCALE;
            int cap;
            figure_fit(p, next, w, h, &s, &cap);
            need = 0.75 * h * s + cap * CAPTION_LINE + 14;
        }
        cairo_surface_destroy(img);
        return need;
    }
    return next->kind == RS_DOC_TABLE ? 110 : 50;
}

/* The contents: every section heading with its page. */
static void pdf_toc(pdf *p, const rs_doc *d)
{
    pdf_end_row(p);
    pdf_need(p, 60);
    p->y += 6;
    pdf_wrap(p, "Contents", 14, true, 0);
    for (int i = 0; i < d->n; i++) {
        if (d->items[i].kind != RS_DOC_H2)
            continue;
        char num[16];
        snprintf(num, sizeof num, "%d", p->h2_page[i]);
        pdf_need(p, 14);
        p->y += 12;
        rs_text(p->cr, PAGE_M + 8, p->y, 9.5, false, 0, d->items[i].text);
        rs_text(p->cr, PAGE_M + 8 + 520, p->y, 9.5, false, 1, num);
    }
    p->y += 12;
}

/* Lays the document out on CR (a real page or a counting pass); returns the page count. */
static int pdf_layout(pdf *p, const rs_doc *d)
{
    for (int i = 0; i < d->n; i++) {
        const rs_doc_item *it = &d->items[i];
        switch (it->kind) {
        case RS_DOC_H1:
            p->y += 14;
            pdf_wrap(p, it->text, 18, true, 0);
            p->y += 8;
            break;
        case RS_DOC_H2:
            pdf_end_row(p);
            pdf_need(p, 34 + keep_with(p, d, i));
            p->h2_page[i] = p->page;
            p->y += 10;
            pdf_wrap(p, it->text, 14, true, 0);
            p->y += 4;
            break;
        case RS_DOC_PARA: pdf_wrap(p, it->text, 9.5, false, 0); p->y += 4; break;
        case RS_DOC_LIST: {
            const char *rest = it->text, *q;
            size_t n;
            while (rs_doc_next_line(&rest, &q, &n)) {
                char line[2048];
                snprintf(line, sizeof line, "\u2022 %.*s", (int)n, q);
                pdf_wrap(p, line, 8.5, false, 6);
            }
            p->y += 6;
            break;
        }
        case RS_DOC_TABLE: pdf_table(p, it->text); break;
        case RS_DOC_FIGURE: pdf_figure(p, d->dir, it); break;
        case RS_DOC_TOC: pdf_toc(p, d); break;
        }
    }
    pdf_end_row(p);
    return p->page;
}

int rs_doc_write_pdf(const rs_doc *d, const char *path, rs_error *err)
{
    cairo_surface_t *surface = cairo_pdf_surface_create(path, PAGE_W, PAGE_H);
    if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surface);
        return rs_error_set(err, RS_EIO, "%s: cannot write the PDF", path);
    }
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATE_DATE, RS_RENDER_PDF_DATE);
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_MOD_DATE, RS_RENDER_PDF_DATE);
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "routerscope");
    if (d->n && d->items[0].kind == RS_DOC_H1)
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, d->items[0].text);
    /* two passes: the first, on a surface with no output, finds each section's page */
    int *pages = calloc((size_t)(d->n ? d->n : 1), sizeof *pages);
    if (!pages) {
        cairo_surface_destroy(surface);
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    cairo_surface_t *dry = cairo_pdf_surface_create(NULL, PAGE_W, PAGE_H);
    pdf q = {.cr = cairo_create(dry), .y = PAGE_M, .page = 1, .h2_page = pages};
    pdf_layout(&q, d);
    cairo_destroy(q.cr);
    cairo_surface_destroy(dry);
    pdf p = {.cr = cairo_create(surface), .y = PAGE_M, .page = 1, .h2_page = pages};
    cairo_set_source_rgb(p.cr, 0, 0, 0);
    pdf_layout(&p, d);
    pdf_footer(&p);
    cairo_show_page(p.cr);
    cairo_destroy(p.cr);
    cairo_surface_finish(surface);
    cairo_status_t st = cairo_surface_status(surface);
    cairo_surface_destroy(surface);
    free(pages);
    if (st != CAIRO_STATUS_SUCCESS)
        return rs_error_set(err, RS_EIO, "%s: %s", path, cairo_status_to_string(st));
    return 0;
}
