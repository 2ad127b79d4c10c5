/* write_pdf.c — the document (doc.h) as a landscape A4 PDF: a title page with the
 * provenance, tables as monospaced text scaled to the page width, figures from their PNGs. */
#include <cairo-pdf.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
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
} pdf;

static void pdf_footer(pdf *p)
{
    char buf[64];
    snprintf(buf, sizeof buf, "page %d", p->page);
    cairo_set_source_rgb(p->cr, 0.4, 0.4, 0.4);
    rs_text(p->cr, PAGE_W - PAGE_M, PAGE_H - PAGE_M / 2, 8, false, 1, buf);
    cairo_set_source_rgb(p->cr, 0, 0, 0);
}

static void pdf_new_page(pdf *p)
{
    pdf_footer(p);
    cairo_show_page(p->cr);
    p->page++;
    p->y = PAGE_M;
}

static void pdf_need(pdf *p, double h)
{
    if (p->y + h > PAGE_H - PAGE_M && p->y > PAGE_M + 1)
        pdf_new_page(p);
}

/* Wrapped text in the sans face at SIZE, lines of at most the page width. */
static void pdf_wrap(pdf *p, const char *text, double size, bool bold, double indent)
{
    double maxw = PAGE_W - 2 * PAGE_M - indent;
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
        pdf_need(p, size * 1.35);
        p->y += size * 1.1;
        rs_text(p->cr, PAGE_M + indent, p->y, size, bold, 0, line);
        p->y += size * 0.25;
        s += best;
        while (*s == ' ')
            s++;
    }
}

static void pdf_table(pdf *p, const char *md)
{
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
    double availw = PAGE_W - 2 * PAGE_M, availh = PAGE_H - 2 * PAGE_M - 24;
    double s = fmin(1.0, fmin(availw / w, availh / h));
    pdf_need(p, h * s + 24);
    cairo_save(p->cr);
    cairo_translate(p->cr, PAGE_M, p->y + 4);
    cairo_scale(p->cr, s / RS_RENDER_PNG_SCALE, s / RS_RENDER_PNG_SCALE);
    cairo_set_source_surface(p->cr, img, 0, 0);
    cairo_paint(p->cr);
    cairo_restore(p->cr);
    cairo_surface_destroy(img);
    p->y += h * s + 6;
    cairo_set_source_rgb(p->cr, 0.3, 0.3, 0.3);
    pdf_wrap(p, it->text, 8, false, 0);
    cairo_set_source_rgb(p->cr, 0, 0, 0);
    p->y += 8;
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
    pdf p = {.cr = cairo_create(surface), .y = PAGE_M, .page = 1};
    cairo_set_source_rgb(p.cr, 0, 0, 0);
    bool title_page = true;
    for (int i = 0; i < d->n; i++) {
        const rs_doc_item *it = &d->items[i];
        switch (it->kind) {
        case RS_DOC_H1:
            p.y += 30;
            pdf_wrap(&p, it->text, 20, true, 0);
            p.y += 10;
            break;
        case RS_DOC_H2:
            /* the title page holds the title, provenance and notes; sections follow */
            if (title_page) {
                pdf_new_page(&p);
                title_page = false;
            }
            pdf_need(&p, 80);
            p.y += 10;
            pdf_wrap(&p, it->text, 14, true, 0);
            p.y += 4;
            break;
        case RS_DOC_PARA: pdf_wrap(&p, it->text, 9.5, false, 0); p.y += 4; break;
        case RS_DOC_LIST: {
            const char *rest = it->text, *q;
            size_t n;
            while (rs_doc_next_line(&rest, &q, &n)) {
                char line[2048];
                snprintf(line, sizeof line, "\u2022 %.*s", (int)n, q);
                pdf_wrap(&p, line, 8.5, false, 6);
            }
            p.y += 6;
            break;
        }
        case RS_DOC_TABLE: pdf_table(&p, it->text); break;
        case RS_DOC_FIGURE: pdf_figure(&p, d->dir, it); break;
        }
    }
    pdf_footer(&p);
    cairo_show_page(p.cr);
    cairo_destroy(p.cr);
    cairo_surface_finish(surface);
    cairo_status_t st = cairo_surface_status(surface);
    cairo_surface_destroy(surface);
    if (st != CAIRO_STATUS_SUCCESS)
        return rs_error_set(err, RS_EIO, "%s: %s", path, cairo_status_to_string(st));
    return 0;
}
