/* write_pdf.c — the document (doc.h) as a landscape A4 PDF: the title, then the sections
 * with the contents' page numbers (a first pass finds them), tables typeset with cairo
 * (ruled, numeric columns right-aligned with their intervals aligned apart, long headers
 * wrapped, the font reduced to fit the width, the header repeated on a new page), figures
 * sized to the page, side by side where they fit, each kept with its caption; headings kept
 * with what follows. A figure is its PNG, or its vector twin (the same name ending in .pdf,
 * drawn through poppler as vectors and embedded fonts) where the twin exists and is the
 * lighter file: plots are a few tens of kilobytes as vectors and hundreds as pixels. */
#include <cairo-pdf.h>
#include <math.h>
#include <poppler.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "doc.h"
#include "render.h"

#define PAGE_W 842.0 /* A4 landscape, points */
#define PAGE_H 595.0
#define PAGE_M 36.0

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

/* A figure's picture: a PNG surface or the first page of its vector twin; W, H in drawing
 * units (the PNG's pixels over RS_RENDER_PNG_SCALE, the twin's points). */
typedef struct figure_src {
    cairo_surface_t *png;
    PopplerDocument *doc;
    PopplerPage *page;
    double w, h;
} figure_src;

static void figure_close(figure_src *f)
{
    if (f->page)
        g_object_unref(f->page);
    if (f->doc)
        g_object_unref(f->doc);
    if (f->png)
        cairo_surface_destroy(f->png);
    *f = (figure_src){0};
}

/* Opens the vector twin of PNG_PATH into F when it exists and is smaller than the PNG. */
static bool figure_open_twin(const char *png_path, figure_src *f)
{
    char twin[4096];
    size_t n = strlen(png_path);
    struct stat png_st, twin_st;
    if (n < 4 || n >= sizeof twin || strcmp(png_path + n - 4, ".png") || stat(png_path, &png_st))
        return false;
    memcpy(twin, png_path, n - 4);
    memcpy(twin + n - 4, ".pdf", 5);
    if (stat(twin, &twin_st) || twin_st.st_size >= png_st.st_size)
        return false;
    char *absolute = realpath(twin, NULL); /* a file: URI names an absolute path */
    gchar *uri = absolute ? g_filename_to_uri(absolute, NULL, NULL) : NULL;
    f->doc = uri ? poppler_document_new_from_file(uri, NULL, NULL) : NULL;
    g_free(uri);
    free(absolute);
    f->page = f->doc && poppler_document_get_n_pages(f->doc) > 0 ? poppler_document_get_page(f->doc, 0) : NULL;
    if (f->page)
        poppler_page_get_size(f->page, &f->w, &f->h);
    if (!f->page || f->w <= 0 || f->h <= 0) {
        figure_close(f);
        return false;
    }
    return true;
}

/* Opens DIR/FILE's picture into F: its lighter vector twin, else the PNG. False (F empty)
 * when neither reads. */
static bool figure_open(const char *dir, const char *file, figure_src *f)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    *f = (figure_src){0};
    if (figure_open_twin(path, f))
        return true;
    f->png = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(f->png) != CAIRO_STATUS_SUCCESS) {
        figure_close(f);
        return false;
    }
    f->w = cairo_image_surface_get_width(f->png) / RS_RENDER_PNG_SCALE;
    f->h = cairo_image_surface_get_height(f->png) / RS_RENDER_PNG_SCALE;
    return true;
}

/* Draws F with its top-left corner at (X, Y), S drawing units a point. */
static void figure_draw(cairo_t *cr, const figure_src *f, double x, double y, double s)
{
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (f->page) {
        cairo_scale(cr, s, s);
        cairo_rectangle(cr, 0, 0, f->w, f->h);
        cairo_clip(cr);
        poppler_page_render_for_printing(f->page, cr);
    } else {
        cairo_scale(cr, s / RS_RENDER_PNG_SCALE, s / RS_RENDER_PNG_SCALE);
        cairo_set_source_surface(cr, f->png, 0, 0);
        cairo_paint(cr);
    }
    cairo_restore(cr);
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

/* A table parsed back from its Markdown rendering (table.h): the header row, the body
 * rows, and per column whether it is numeric (right-aligned: the separator's ':'). */
#define TCOLS 32
#define TCELL 256
#define THEAD_LINES 3
typedef struct tcell_row { char cell[TCOLS][TCELL]; } tcell_row;
typedef struct ptable {
    tcell_row *rows;        /* rows[0]: the header */
    int nrows, ncols;
    bool right[TCOLS];
    double size;            /* font size */
    double w[TCOLS];        /* column widths, padding included */
    double vw[TCOLS];       /* numeric columns: the widest value before " [" */
    char head[TCOLS][THEAD_LINES][TCELL]; /* the header, wrapped */
    int head_n[TCOLS];      /* lines of each column's header */
    int head_lines;         /* the most of them */
} ptable;

#define TPAD 7.0 /* points between columns */

/* Splits "| a | b |" into trimmed cells; returns how many. */
static int split_row(const char *q, size_t n, char (*cell)[TCELL])
{
    int nc = 0;
    size_t i = 1; /* past the leading '|' */
    while (i < n && nc < TCOLS) {
        size_t j = i;
        while (j < n && q[j] != '|')
            j++;
        if (j >= n)
            break;
        size_t a = i, b = j;
        while (a < b && q[a] == ' ')
            a++;
        while (b > a && q[b - 1] == ' ')
            b--;
        snprintf(cell[nc++], TCELL, "%.*s", (int)(b - a), q + a);
        i = j + 1;
    }
    return nc;
}

/* The cell's value and interval parts: "49.22 [47.21, 51.26]" -> "49.22", "[47.21, 51.26]". */
static void split_interval(const char *text, char *value, char *interval, size_t size)
{
    const char *br = strstr(text, " [");
    snprintf(value, size, "%.*s", (int)(br ? br - text : (long)strlen(text)), text);
    snprintf(interval, size, "%s", br ? br + 1 : "");
}

/* Greedy word wrap of TEXT into at most THEAD_LINES lines of width MAXW; returns the count. */
static int wrap_words(cairo_t *cr, const char *text, double size, double maxw, char (*out)[TCELL])
{
    int n = 0;
    out[0][0] = 0;
    char buf[TCELL];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char trial[2 * TCELL];
        snprintf(trial, sizeof trial, "%s%s%s", out[n], out[n][0] ? " " : "", w);
        if (out[n][0] && rs_text_width(cr, size, true, trial) > maxw && n + 1 < THEAD_LINES)
            snprintf(out[++n], TCELL, "%s", w);
        else
            snprintf(out[n], TCELL, "%.*s", TCELL - 1, trial);
    }
    return n + 1;
}

/* Column widths at the table's font size; a long header wraps over up to three lines
 * rather than widening a column of short numbers. Returns the total width. */
static double measure_table(cairo_t *cr, ptable *t)
{
    double total = 0;
    t->head_lines = 1;
    for (int c = 0; c < t->ncols; c++) {
        double body = 0, iw = 0, word = 0;
        t->vw[c] = 0;
        for (int r = 1; r < t->nrows; r++) {
            char v[TCELL], in[TCELL];
            split_interval(t->rows[r].cell[c], v, in, sizeof v);
            if (t->right[c]) {
                t->vw[c] = fmax(t->vw[c], rs_text_width(cr, t->size, false, v));
                iw = fmax(iw, in[0] ? rs_text_width(cr, t->size, false, in) : 0);
            } else
                body = fmax(body, rs_text_width(cr, t->size, false, t->rows[r].cell[c]));
        }
        if (t->right[c])
            body = t->vw[c] + (iw > 0 ? t->size * 0.4 + iw : 0);
        char hb[TCELL];
        snprintf(hb, sizeof hb, "%s", t->rows[0].cell[c]);
        for (char *save = NULL, *w = strtok_r(hb, " ", &save); w; w = strtok_r(NULL, " ", &save))
            word = fmax(word, rs_text_width(cr, t->size, true, w));
        double head = rs_text_width(cr, t->size, true, t->rows[0].cell[c]);
        double w = fmax(fmax(body, word), fmin(head, fmax(body, 11 * t->size)));
        t->head_n[c] = wrap_words(cr, t->rows[0].cell[c], t->size, w + 0.5, t->head[c]);
        t->head_lines = t->head_n[c] > t->head_lines ? t->head_n[c] : t->head_lines;
        t->w[c] = w + TPAD;
        total += t->w[c];
    }
    return total;
}

static void draw_rule(cairo_t *cr, double y, double w, double width)
{
    cairo_set_line_width(cr, width);
    cairo_move_to(cr, PAGE_M, y);
    cairo_line_to(cr, PAGE_M + w, y);
    cairo_stroke(cr);
}

/* The header row between two rules, at p->y; moves p->y below it. */
static void draw_header(pdf *p, const ptable *t, double total)
{
    cairo_t *cr = p->cr;
    double line = t->size * 1.2;
    draw_rule(cr, p->y, total, 0.9);
    for (int c = 0; c < t->ncols; c++) {
        double x = PAGE_M;
        for (int k = 0; k < c; k++)
            x += t->w[k];
        for (int l = 0; l < t->head_n[c]; l++) {
            double y = p->y + t->size * 1.25 + l * line;
            if (t->right[c])
                rs_text(cr, x + t->w[c] - TPAD / 2, y, t->size, true, 1, t->head[c][l]);
            else
                rs_text(cr, x + TPAD / 2, y, t->size, true, 0, t->head[c][l]);
        }
    }
    p->y += t->size * 0.6 + t->head_lines * line;
    draw_rule(cr, p->y, total, 0.5);
}

/* Body row R at p->y (a light band on every other row); moves p->y below it. */
static void draw_body_row(pdf *p, const ptable *t, int r, double total, double row_h)
{
    cairo_t *cr = p->cr;
    if (r % 2 == 0) {
        cairo_set_source_rgb(cr, 0.95, 0.95, 0.95);
        cairo_rectangle(cr, PAGE_M, p->y, total, row_h);
        cairo_fill(cr);
    }
    double x = PAGE_M, y = p->y + row_h * 0.5 + t->size * 0.36;
    for (int c = 0; c < t->ncols; x += t->w[c], c++) {
        const char *text = t->rows[r].cell[c];
        cairo_set_source_rgb(cr, 0, 0, 0);
        if (!t->right[c]) {
            rs_text(cr, x + TPAD / 2, y, t->size, false, 0, text);
            continue;
        }
        /* values aligned on their right edge, intervals (grey) on the column's */
        char v[TCELL], in[TCELL];
        split_interval(text, v, in, sizeof v);
        double right = x + t->w[c] - TPAD / 2;
        rs_text(cr, in[0] ? x + TPAD / 2 + t->vw[c] : right, y, t->size, false, 1, v);
        cairo_set_source_rgb(cr, 0.38, 0.38, 0.38);
        if (in[0])
            rs_text(cr, right, y, t->size, false, 1, in);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    p->y += row_h;
}

/* The table ruled and aligned, its header repeated on each page it spans. */
static void draw_table(pdf *p, ptable *t)
{
    if (t->nrows < 1)
        return;
    t->size = 8.0;
    double total = measure_table(p->cr, t);
    if (total > AVAIL_W) {
        t->size = fmax(5.0, t->size * AVAIL_W / total);
        total = measure_table(p->cr, t);
    }
    double row_h = t->size * 1.6, head_h = t->size * 0.6 + t->head_lines * t->size * 1.2;
    pdf_need(p, head_h + row_h * (t->nrows > 4 ? 4 : t->nrows - 1) + 4);
    draw_header(p, t, total);
    for (int r = 1; r < t->nrows; r++) {
        int page = p->page;
        pdf_need(p, row_h + 2);
        if (p->page != page)
            draw_header(p, t, total);
        draw_body_row(p, t, r, total, row_h);
    }
    cairo_set_source_rgb(p->cr, 0, 0, 0);
    draw_rule(p->cr, p->y, total, 0.9);
    p->y += 6;
}

/* A table item: its caption ("### "), the ruled table, then its notes in grey. */
static void pdf_table(pdf *p, const char *md)
{
    pdf_end_row(p);
    size_t cap = 1;
    for (const char *c = md; *c; c++)
        cap += *c == '\n';
    ptable t = {.rows = calloc(cap, sizeof *t.rows)};
    const char *rest = md, *q;
    size_t n;
    while (rs_doc_next_line(&rest, &q, &n)) {
        char line[4096];
        snprintf(line, sizeof line, "%.*s", (int)n, q);
        if (!strncmp(line, "### ", 4)) {
            pdf_need(p, 80);
            p->y += 4;
            pdf_wrap(p, line + 4, 10, true, 0);
            p->y += 5;
        } else if (line[0] == '|' && strstr(line, "---")) {
            char sep[TCOLS][TCELL];
            int nc = split_row(line, strlen(line), sep);
            for (int c = 0; c < nc; c++)
                t.right[c] = sep[c][0] && sep[c][strlen(sep[c]) - 1] == ':';
        } else if (line[0] == '|' && t.rows) {
            int nc = split_row(line, strlen(line), t.rows[t.nrows].cell);
            t.ncols = nc > t.ncols ? nc : t.ncols;
            t.nrows++;
        } else if (line[0]) {
            draw_table(p, &t);
            t.nrows = 0;
            cairo_set_source_rgb(p->cr, 0.3, 0.3, 0.3);
            pdf_wrap(p, line, 7.5, false, 0);
            cairo_set_source_rgb(p->cr, 0, 0, 0);
        }
    }
    draw_table(p, &t);
    free(t.rows);
    p->y += 10;
}

#define CAPTION_SIZE 8.0
#define CAPTION_LINE (CAPTION_SIZE * 1.35)

/* The figure's size on the page (points) at scale S, and its caption's lines at that width. */
static void figure_fit(pdf *p, const rs_doc_item *it, double w, double h, double *s, int *cap_lines)
{
    /* a grid of two views, or a heatmap, goes two to a row: half the page still shows
       its digits */
    bool pairable = strstr(it->file, "/grid-") || strstr(it->file, "/heatmap-");
    double maxw = pairable && w < AVAIL_W * 1.3 ? AVAIL_W / 2 - 14 : AVAIL_W;
    *s = fmin(1.0, fmin(maxw / w, (AVAIL_H - 3 * CAPTION_LINE) / h));
    *cap_lines = wrap_lines(p, it->text, CAPTION_SIZE, false, 0, fmax(w * *s, 240), false);
    *s = fmin(*s, (AVAIL_H - *cap_lines * CAPTION_LINE - 8) / h);
}

/* A figure with its caption under it, never split: beside the previous figure when both
 * fit the width, else below; on a new page when the rest of this one is too short even
 * at three quarters of its size. */
static void pdf_figure(pdf *p, const char *dir, const rs_doc_item *it)
{
    figure_src fig;
    if (!figure_open(dir, it->file, &fig)) {
        pdf_wrap(p, "(figure missing)", 9, false, 0);
        return;
    }
    double w = fig.w, h = fig.h;
    double s;
    int cap;
    figure_fit(p, it, w, h, &s, &cap);
    double cap_w = fmax(w * s, 240), box_w = cap_w + 14;
    if (p->row_x > 0 && p->row_x + box_w > AVAIL_W + 14)
        pdf_end_row(p);
    double room = PAGE_H - PAGE_M - 14 - p->y - 4 - cap * CAPTION_LINE - 8;
    if (h * s > room) {
        if (room >= 0.75 * h * s)
            s = room / h; /* beside a figure shrunk the same way, or alone */
        else
            pdf_new_page(p);
    }
    double x = PAGE_M + p->row_x, y0 = p->y;
    figure_draw(p->cr, &fig, x, y0 + 4, s);
    figure_close(&fig);
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
        figure_src fig;
        double need = 60;
        if (figure_open(d->dir, next->file, &fig)) {
            double s;
            int cap;
            figure_fit(p, next, fig.w, fig.h, &s, &cap);
            need = 0.75 * fig.h * s + cap * CAPTION_LINE + 14;
            figure_close(&fig);
        }
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
