/* report.c — rs_report_write (report.h): builds the report's content once as a list of
 * items (headings, paragraphs, tables, figures) and writes it as HTML, Markdown and PDF. */
#include "report.h"

#include <cairo-pdf.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grid.h"
#include "stats_tables.h"
#include "table.h"

#define PAGE_W 842.0 /* A4 landscape, points */
#define PAGE_H 595.0
#define PAGE_M 36.0
#define MONO "DejaVu Sans Mono"
#define DIFF_IMAGES 5   /* rows of the largest-differences table */
#define DIFF_GRIDS 2    /* of which drawn as grids */

/* ---- the document ------------------------------------------------------------------------ */

typedef enum { IT_H1, IT_H2, IT_PARA, IT_LIST, IT_TABLE, IT_FIGURE } item_kind;

typedef struct item {
    item_kind kind;
    char *text;     /* heading / paragraph / list lines ('\n') / table md / figure caption */
    char *file;     /* figure: path relative to the output folder */
} item;

typedef struct doc {
    item *items;
    int n, cap;
    const char *dir;
    const char *const *notes; /* provenance lines, for tex */
    int nnotes;
    rs_error *err;
    int rc;         /* first error */
} doc;

/* "NAME (sha256 prefix, k=K)", e.g. "fmnist-prc-k2 (a28e0c3afc92, k=2)". */
static void model_label(const rs_run_info *r, char *buf, size_t size)
{
    char name[256];
    rs_run_model_label(r, name, sizeof name);
    size_t len = strlen(name);
    snprintf(buf, size, "%.*s, k=%d)", (int)(len ? len - 1 : 0), name, r->top_k);
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void add(doc *d, item_kind kind, const char *text, const char *file)
{
    if (d->rc)
        return;
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 32;
        item *p = realloc(d->items, sizeof *p * (size_t)cap);
        if (!p) {
            d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
            return;
        }
        d->items = p, d->cap = cap;
    }
    item *it = &d->items[d->n];
    it->kind = kind;
    it->text = xstrdup(text ? text : "");
    it->file = file ? xstrdup(file) : NULL;
    if (!it->text || (file && !it->file)) {
        free(it->text);
        free(it->file);
        d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
        return;
    }
    d->n++;
}

static void addf(doc *d, item_kind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void addf(doc *d, item_kind kind, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    add(d, kind, buf, NULL);
}

static void doc_free(doc *d)
{
    for (int i = 0; i < d->n; i++) {
        free(d->items[i].text);
        free(d->items[i].file);
    }
    free(d->items);
}

static int write_tables_file(doc *d, rs_table *t, const char *path, rs_table_format fmt)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return rs_error_set(d->err, RS_EIO, "%s: %s", path, strerror(errno));
    int rc = rs_table_write(f, &t, 1, d->notes, d->nnotes, fmt, d->err);
    if (fclose(f) && !rc)
        rc = rs_error_set(d->err, RS_EIO, "%s: %s", path, strerror(errno));
    return rc;
}

/* Adds table T (owned, freed here) as NAME: tables/NAME.{csv,tex} and inline md. */
static void add_table(doc *d, rs_table *t, const char *name)
{
    if (!t && !d->rc)
        d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
    if (d->rc) {
        rs_table_free(t);
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/tables/%s.csv", d->dir, name);
    int rc = write_tables_file(d, t, path, RS_TABLE_CSV);
    snprintf(path, sizeof path, "%s/tables/%s.tex", d->dir, name);
    if (!rc)
        rc = write_tables_file(d, t, path, RS_TABLE_TEX);
    char *md = NULL;
    size_t len = 0;
    FILE *mf = rc ? NULL : open_memstream(&md, &len);
    if (!rc && !mf)
        rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
    if (!rc) {
        rc = rs_table_write(mf, &t, 1, NULL, 0, RS_TABLE_MD, d->err);
        fclose(mf);
    }
    if (!rc) {
        add(d, IT_TABLE, md, name);
    } else {
        d->rc = rc;
    }
    free(md);
    rs_table_free(t);
}

/* ---- escaping ---------------------------------------------------------------------------- */

static void html_esc(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++) {
        switch (s[i]) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(s[i], f);
        }
    }
}

/* Markdown text outside tables: escape the characters that would start markup. */
static void md_esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (strchr("\\`*_[]<>|#", *s))
            fputc('\\', f);
        fputc(*s, f);
    }
}

/* ---- Markdown ---------------------------------------------------------------------------- */

static int write_md(const doc *d, const char *path, rs_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
    for (int i = 0; i < d->n; i++) {
        const item *it = &d->items[i];
        switch (it->kind) {
        case IT_H1: fputs("# ", f); md_esc(f, it->text); fputs("\n\n", f); break;
        case IT_H2: fputs("## ", f); md_esc(f, it->text); fputs("\n\n", f); break;
        case IT_PARA: md_esc(f, it->text); fputs("\n\n", f); break;
        case IT_LIST: {
            const char *p = it->text;
            while (*p) {
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                char line[2048];
                snprintf(line, sizeof line, "%.*s", (int)n, p);
                fputs("- ", f);
                md_esc(f, line);
                fputc('\n', f);
                p += n + (e ? 1 : 0);
            }
            fputc('\n', f);
            break;
        }
        case IT_TABLE:
            fputs(it->text, f);
            fprintf(f, "Files: [tables/%s.csv](tables/%s.csv), [tables/%s.tex](tables/%s.tex)\n\n", it->file,
                    it->file, it->file, it->file);
            break;
        case IT_FIGURE:
            fputs("![", f);
            md_esc(f, it->text);
            fprintf(f, "](%s)\n\n", it->file);
            md_esc(f, it->text);
            fputs("\n\n", f);
            break;
        }
    }
    if (fclose(f))
        return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

/* ---- HTML -------------------------------------------------------------------------------- */

/* The md rendering of a table (table.h) as an HTML table: "### title", pipe rows (the
 * second is the alignment row), other lines as notes. */
static void html_table(FILE *f, const char *md, const char *name)
{
    const char *p = md;
    int row = 0;
    bool open = false;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n >= 4 && !strncmp(p, "### ", 4)) {
            fputs("<h3>", f);
            html_esc(f, p + 4, n - 4);
            fputs("</h3>\n", f);
        } else if (n > 0 && p[0] == '|') {
            if (!open) {
                fputs("<table>\n", f);
                open = true;
            }
            if (row != 1) {
                const char *tag = row == 0 ? "th" : "td";
                fputs("<tr>", f);
                const char *c = p + 1, *end = p + n;
                while (c < end) {
                    const char *bar = memchr(c, '|', (size_t)(end - c));
                    if (!bar)
                        break;
                    const char *a = c, *b = bar;
                    while (a < b && *a == ' ')
                        a++;
                    while (b > a && b[-1] == ' ')
                        b--;
                    bool num = row > 0 && a < b && (strchr("0123456789-+", *a) != NULL || !strncmp(a, "n/a", 3));
                    fprintf(f, "<%s%s>", tag, num ? " class=\"n\"" : "");
                    html_esc(f, a, (size_t)(b - a));
                    fprintf(f, "</%s>", tag);
                    c = bar + 1;
                }
                fputs("</tr>\n", f);
            }
            row++;
        } else {
            if (open) {
                fputs("</table>\n", f);
                open = false;
            }
            if (n > 0) {
                fputs("<p class=\"note\">", f);
                html_esc(f, p, n);
                fputs("</p>\n", f);
            }
        }
        p += n + (e ? 1 : 0);
    }
    if (open)
        fputs("</table>\n", f);
    fprintf(f, "<p class=\"files\">Files: <a href=\"tables/%s.csv\">tables/%s.csv</a>, "
               "<a href=\"tables/%s.tex\">tables/%s.tex</a></p>\n",
            name, name, name, name);
}

static int write_html(const doc *d, const char *path, rs_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
    if (d->n && d->items[0].kind == IT_H1)
        html_esc(f, d->items[0].text, strlen(d->items[0].text));
    fputs("</title>\n<style>\n"
          "body{font-family:'DejaVu Sans',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
          "color:#222;line-height:1.4}\n"
          "table{border-collapse:collapse;margin:.5em 0;font-size:.85em}\n"
          "th,td{border-bottom:1px solid #ccc;padding:.2em .6em;text-align:left;white-space:nowrap}\n"
          "td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
          "th{border-bottom:2px solid #444}\n"
          "img{max-width:100%;border:1px solid #ddd}\n"
          "p.note,p.files{font-size:.85em;color:#555}\n"
          "ul.prov{font-size:.85em;font-family:'DejaVu Sans Mono',monospace;word-break:break-all}\n"
          "figure{margin:1em 0}\n"
          "</style>\n</head>\n<body>\n",
          f);
    for (int i = 0; i < d->n; i++) {
        const item *it = &d->items[i];
        switch (it->kind) {
        case IT_H1:
        case IT_H2: {
            const char *h = it->kind == IT_H1 ? "h1" : "h2";
            fprintf(f, "<%s>", h);
            html_esc(f, it->text, strlen(it->text));
            fprintf(f, "</%s>\n", h);
            break;
        }
        case IT_PARA:
            fputs("<p>", f);
            html_esc(f, it->text, strlen(it->text));
            fputs("</p>\n", f);
            break;
        case IT_LIST: {
            fputs("<ul class=\"prov\">\n", f);
            const char *p = it->text;
            while (*p) {
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                fputs("<li>", f);
                html_esc(f, p, n);
                fputs("</li>\n", f);
                p += n + (e ? 1 : 0);
            }
            fputs("</ul>\n", f);
            break;
        }
        case IT_TABLE: html_table(f, it->text, it->file); break;
        case IT_FIGURE:
            fprintf(f, "<figure><img src=\"%s\" alt=\"", it->file);
            html_esc(f, it->text, strlen(it->text));
            fputs("\"><figcaption>", f);
            html_esc(f, it->text, strlen(it->text));
            fputs("</figcaption></figure>\n", f);
            break;
        }
    }
    fputs("</body>\n</html>\n", f);
    if (fclose(f))
        return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

/* ---- PDF --------------------------------------------------------------------------------- */

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
    const char *q = md;
    while (*q) {
        const char *e = strchr(q, '\n');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        if (n && *q == '|') {
            char line[4096];
            snprintf(line, sizeof line, "%.*s", (int)n, q);
            cairo_text_extents_t ext;
            cairo_text_extents(cr, line, &ext);
            if (ext.x_advance > maxw)
                maxw = ext.x_advance;
        }
        q += n + (e ? 1 : 0);
    }
    if (maxw > PAGE_W - 2 * PAGE_M)
        size *= (PAGE_W - 2 * PAGE_M) / maxw;
    q = md;
    while (*q) {
        const char *e = strchr(q, '\n');
        size_t n = e ? (size_t)(e - q) : strlen(q);
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
        q += n + (e ? 1 : 0);
    }
    p->y += 10;
}

static void pdf_figure(pdf *p, const char *dir, const item *it)
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

static int write_pdf(const doc *d, const char *path, rs_error *err)
{
    cairo_surface_t *surface = cairo_pdf_surface_create(path, PAGE_W, PAGE_H);
    if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surface);
        return rs_error_set(err, RS_EIO, "%s: cannot write the PDF", path);
    }
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATE_DATE, RS_RENDER_PDF_DATE);
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_MOD_DATE, RS_RENDER_PDF_DATE);
    cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "routerscope");
    if (d->n && d->items[0].kind == IT_H1)
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, d->items[0].text);
    pdf p = {.cr = cairo_create(surface), .y = PAGE_M, .page = 1};
    cairo_set_source_rgb(p.cr, 0, 0, 0);
    bool title_page = true;
    for (int i = 0; i < d->n; i++) {
        const item *it = &d->items[i];
        switch (it->kind) {
        case IT_H1:
            p.y += 30;
            pdf_wrap(&p, it->text, 20, true, 0);
            p.y += 10;
            break;
        case IT_H2:
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
        case IT_PARA: pdf_wrap(&p, it->text, 9.5, false, 0); p.y += 4; break;
        case IT_LIST: {
            const char *q = it->text;
            while (*q) {
                const char *e = strchr(q, '\n');
                size_t n = e ? (size_t)(e - q) : strlen(q);
                char line[2048];
                snprintf(line, sizeof line, "\u2022 %.*s", (int)n, q);
                pdf_wrap(&p, line, 8.5, false, 6);
                q += n + (e ? 1 : 0);
            }
            p.y += 6;
            break;
        }
        case IT_TABLE: pdf_table(&p, it->text); break;
        case IT_FIGURE: pdf_figure(&p, d->dir, it); break;
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

/* ---- per-image Top-1 agreement ----------------------------------------------------------- */

/* For every image of RUN: matched pairs and Top-1 agreements with view 0 over all
 * non-reference views and MoE layers, in one streaming pass. Arrays of images_done,
 * indexed by image - offset; owned by the caller. */
static int image_top1(rs_store *store, const rs_run_info *run, int64_t **pairs_out, int64_t **agree_out,
                      rs_error *err)
{
    int N = run->images_done, L = run->num_layers, Np = run->patches, R = run->record_k;
    int64_t *pairs = calloc((size_t)(N > 0 ? N : 1), sizeof *pairs);
    int64_t *agree = calloc((size_t)(N > 0 ? N : 1), sizeof *agree);
    int *ref = malloc(sizeof(int) * (size_t)(L > 0 ? L : 1) * (size_t)(Np > 0 ? Np : 1));
    rs_store_cursor *cur = NULL;
    int rc = !pairs || !agree || !ref ? rs_error_set(err, RS_ENOMEM, "out of memory")
                                      : rs_store_cursor_open(store, run->id, &cur, err);
    rs_routing_record rec;
    while (!rc && (rc = rs_store_cursor_next(cur, &rec, err)) == 1) {
        rc = 0;
        int i = rec.image - run->offset;
        if (i < 0 || i >= N || rec.layer < 0 || rec.layer >= L)
            continue;
        const uint8_t *top = rec.top_idx + (size_t)run->has_cls * R;
        if (rec.view == 0) {
            for (int j = 0; j < Np; j++)
                ref[(size_t)rec.layer * Np + j] = top[(size_t)j * R];
            continue;
        }
        for (int j = 0; j < Np; j++) {
            int m = rec.match[j];
            if (m < 0 || m >= Np)
                continue;
            pairs[i]++;
            agree[i] += top[(size_t)j * R] == ref[(size_t)rec.layer * Np + m];
        }
    }
    rs_store_cursor_close(cur);
    free(ref);
    if (rc < 0) {
        free(pairs);
        free(agree);
        return rc;
    }
    *pairs_out = pairs;
    *agree_out = agree;
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static int make_dir(const char *path, rs_error *err)
{
    if (mkdir(path, 0777) && errno != EEXIST)
        return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (stat(path, &sb) || !S_ISDIR(sb.st_mode))
        return rs_error_set(err, RS_EIO, "%s: not a folder", path);
    return 0;
}

/* Why A and B are not comparable (same images, views and seed), or "" when they are. */
static void comparable(const rs_run_info *a, const rs_run_info *b, char *why, size_t size)
{
    why[0] = 0;
    if (strcmp(a->data, b->data) || a->offset != b->offset || a->count != b->count)
        snprintf(why, size, "data differs (%s [%d..%d) vs %s [%d..%d))", a->data, a->offset, a->offset + a->count,
                 b->data, b->offset, b->offset + b->count);
    else if (strcmp(a->protocol, b->protocol))
        snprintf(why, size, "protocol differs (%s vs %s)", a->protocol, b->protocol);
    else if (a->num_views != b->num_views)
        snprintf(why, size, "number of views differs (%d vs %d)", a->num_views, b->num_views);
    else if (a->seed != b->seed)
        snprintf(why, size, "seed differs (%" PRIu64 " vs %" PRIu64 ": different augmented views)", a->seed, b->seed);
    else if (a->images_done != b->images_done)
        snprintf(why, size, "images done differ (%d vs %d)", a->images_done, b->images_done);
    else if (a->num_layers != b->num_layers || a->patches != b->patches)
        snprintf(why, size, "MoE layers or patch grid differ");
    else {
        for (int v = 0; v < a->num_views; v++) {
            if (strcmp(a->view_specs[v], b->view_specs[v])) {
                snprintf(why, size, "view %d differs (%s vs %s)", v, a->view_specs[v], b->view_specs[v]);
                break;
            }
        }
    }
}

static void set_rate(rs_table *t, int r, int c, const rs_stats_rate *x, int64_t n)
{
    if (x->valid)
        rs_table_set_rate(t, r, c, x->value, x->boot_valid, x->boot_lo, x->boot_hi, true, x->wilson_lo,
                          x->wilson_hi, n);
}

static void run_label(const rs_run_info *r, char *buf, size_t size)
{
    char model[256];
    rs_run_model_label(r, model, sizeof model);
    snprintf(buf, size, "run %" PRId64 ": %.120s, k=%d, %s, seed %" PRIu64, r->id, model, r->top_k, r->protocol,
             r->seed);
}

static bool is_noise(const rs_run_info *r)
{
    return !strcmp(r->protocol, "noise");
}

/* ---- the report -------------------------------------------------------------------------- */

typedef struct report {
    rs_store *store;
    const rs_report_options *opt;
    int n;
    rs_run_info *info;
    rs_stats **st;
    int *baseline;      /* per run: the run it is compared with (index), or -1 */
    char (*flag)[320];  /* per run: why it is not comparable with its baseline, or "" */
    doc d;
    int nfig;
} report;

static void figure(report *R, const char *file, const char *caption)
{
    char rel[512];
    snprintf(rel, sizeof rel, "figures/%s", file);
    add(&R->d, IT_FIGURE, caption, rel);
}

static void fig_path(report *R, const char *file, char *buf, size_t size)
{
    snprintf(buf, size, "%s/figures/%s", R->opt->out_dir, file);
}

static void grid_figure(report *R, const rs_run_info *run, int image)
{
    if (R->d.rc)
        return;
    char file[256], path[4096], caption[512], rl[200];
    snprintf(file, sizeof file, "grid-run%" PRId64 "-image%d.png", run->id, image);
    fig_path(R, file, path, sizeof path);
    rs_image_routing r;
    int rc = rs_run_image_routing(R->store, run, image, &r, R->d.err);
    if (rc) {
        R->d.rc = rc;
        return;
    }
    rs_report_context rc_ctx;
    rs_report_context_load(run, image, &rc_ctx);
    rc = rs_render_grid(&r, &rc_ctx.ctx, path, NULL, R->d.err);
    rs_report_context_free(&rc_ctx);
    rs_image_routing_free(&r);
    if (rc) {
        R->d.rc = rc;
        return;
    }
    run_label(run, rl, sizeof rl);
    snprintf(caption, sizeof caption,
             "Expert-selection grid of image %d, %s: top-1 expert per patch, one row per MoE layer; red borders "
             "where the expert differs from view 0's matched patch, hatched cells have no match.",
             image, rl);
    figure(R, file, caption);
}

static bool holds(const rs_run_info *r, int image)
{
    return image >= r->offset && image < r->offset + r->images_done;
}

static void provenance(report *R, char ***lines_out, int *nlines)
{
    const rs_report_options *o = R->opt;
    int cap = 8 + 3 * R->n, n = 0;
    char **lines = calloc((size_t)cap, sizeof *lines);
    if (!lines) {
        *lines_out = NULL;
        *nlines = 0;
        return;
    }
    char buf[4096];
    snprintf(buf, sizeof buf, "routerscope %s", o->version ? o->version : "?");
    lines[n++] = xstrdup(buf);
    snprintf(buf, sizeof buf, "command: %s", o->command ? o->command : "?");
    lines[n++] = xstrdup(buf);
    snprintf(buf, sizeof buf, "database: %s", o->db ? o->db : "?");
    lines[n++] = xstrdup(buf);
    if (R->n && R->st[0]->resamples > 0)
        snprintf(buf, sizeof buf,
                 "intervals: percentile bootstrap over images, %d resamples, seed %" PRIu64 ", level %.0f %%; "
                 "accuracy: Wilson",
                 R->st[0]->resamples, R->st[0]->seed, 100 * R->st[0]->level);
    else
        snprintf(buf, sizeof buf, "intervals: no bootstrap");
    lines[n++] = xstrdup(buf);
    for (int i = 0; i < R->n; i++) {
        const rs_run_info *r = &R->info[i];
        int len = snprintf(buf, sizeof buf,
                           "run %" PRId64 ": model %s (sha256 %s, k=%d); data %s [%d..%d), %d of %d images; "
                           "protocol %s; seed %" PRIu64 "; views:",
                           r->id, r->model_path, r->model_sha256, r->top_k, r->data, r->offset, r->offset + r->count,
                           r->images_done, r->count, r->protocol, r->seed);
        for (int v = 0; v < r->num_views && len < (int)sizeof buf; v++)
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%s %d=%s", v ? ";" : "", v, r->view_specs[v]);
        lines[n++] = xstrdup(buf);
        snprintf(buf, sizeof buf, "run %" PRId64 " replayed by: %s (routerscope %s)", r->id,
                 r->command && *r->command ? r->command : "?", r->version && *r->version ? r->version : "?");
        lines[n++] = xstrdup(buf);
    }
    *lines_out = lines;
    *nlines = n;
}

static void add_list(doc *d, char **lines, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(lines[i] ? lines[i] : "") + 1;
    char *s = malloc(len);
    if (!s) {
        if (!d->rc)
            d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
        return;
    }
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        strcat(s, lines[i] ? lines[i] : "");
        if (i + 1 < n)
            strcat(s, "\n");
    }
    add(d, IT_LIST, s, NULL);
    free(s);
}

static void run_name(const rs_run_info *r, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRId64, r->id);
}

/* The run's expert load and its transition / S matrices, as two figures. */
static void load_transition_figures(report *R, const rs_run_info *r, const rs_stats *st, const char *rn)
{
    doc *d = &R->d;
    char file[128], path[4096];
    snprintf(file, sizeof file, "load-run%s.png", rn);
    fig_path(R, file, path, sizeof path);
    if (!d->rc)
        d->rc = rs_render_load(st, r, path, d->err);
    figure(R, file, "Expert load per MoE layer (share of the top-k slots, all views; dashed: uniform).");
    snprintf(file, sizeof file, "transition-run%s.png", rn);
    fig_path(R, file, path, sizeof path);
    if (!d->rc)
        d->rc = rs_render_transition(st, r, -1, path, d->err);
    figure(R, file, "Top-1 transitions view 0 \u2192 other views and the PRC matrix S per MoE layer.");
}

static void single_report(report *R)
{
    doc *d = &R->d;
    const rs_run_info *r = &R->info[0];
    const rs_stats *st = R->st[0];
    char name[64], file[128], path[4096], rl[200], rn[32];
    run_label(r, rl, sizeof rl);
    run_name(r, rn, sizeof rn);

    add(d, IT_H2, "Routing consistency", NULL);
    addf(d, IT_PARA,
         "Agreement of each view's routing with view 0 over matched patch pairs: Top-1 (same first expert), "
         "Top-2 (same first and second), Top-2 order-agnostic (same pair of experts), per MoE layer and over all "
         "of them, in percent with %.0f %% bootstrap intervals over images.",
         100 * st->level);
    snprintf(name, sizeof name, "consistency-run%s", rn);
    add_table(d, rs_report_consistency_table(r, st, rn, false), name);

    add(d, IT_H2, "Accuracy", NULL);
    snprintf(name, sizeof name, "accuracy-run%s", rn);
    add_table(d, rs_report_accuracy_table(r, st, rn), name);
    snprintf(name, sizeof name, "change-run%s", rn);
    add_table(d, rs_report_change_table(r, st, rn), name);

    add(d, IT_H2, "Router figures", NULL);
    snprintf(name, sizeof name, "router-run%s", rn);
    add_table(d, rs_report_layer_table(r, st, rn), name);
    snprintf(file, sizeof file, "router-run%s.png", rn);
    fig_path(R, file, path, sizeof path);
    if (!d->rc)
        d->rc = rs_report_render_router((const rs_stats *const *)&R->st[0], (const rs_run_info *const[]){r}, 1, path, d->err);
    figure(R, file, "PRC score, JSD, routing entropy and load CV per MoE layer.");

    if (is_noise(r) && r->num_views > 1) {
        add(d, IT_H2, "Severity sweep", NULL);
        snprintf(file, sizeof file, "sweep-run%s.png", rn);
        fig_path(R, file, path, sizeof path);
        if (!d->rc)
            d->rc = rs_render_sweep((const rs_stats *const *)&R->st[0], (const rs_run_info *const[]){r}, 1, -1, path, d->err);
        figure(R, file, "Top-1 agreement with the clean view against the noise severity, all MoE layers pooled, "
                        "with bootstrap bands.");
        snprintf(file, sizeof file, "accuracy-run%s.png", rn);
        fig_path(R, file, path, sizeof path);
        if (!d->rc)
            d->rc = rs_render_accuracy((const rs_stats *const *)&R->st[0], (const rs_run_info *const[]){r}, 1, path,
                                       d->err);
        figure(R, file, "Accuracy against the noise severity, with Wilson bands.");
    }

    add(d, IT_H2, "Expert load and transitions", NULL);
    load_transition_figures(R, r, st, rn);

    if (R->opt->images > 0) {
        add(d, IT_H2, "Expert-selection grids", NULL);
        for (int i = 0; i < R->opt->images && i < r->images_done; i++)
            grid_figure(R, r, r->offset + i);
    }
}

/* One row per run with a comparison CMPS[i] (to its baseline): the paired differences of
 * every agreement rate over all MoE layers, and McNemar's test on Top-1. */
static rs_table *baseline_differences(report *R, rs_stats_comparison *const *cmps)
{
    const char *keys[] = {"run", "baseline", "top1_diff", "top2_diff", "top2_unordered_diff", "top2_overlap_diff",
                          "mcnemar_p"};
    const char *heads[] = {"Run", "Baseline", "Top-1 \u0394", "Top-2 \u0394", "Top-2 (order-agnostic) \u0394",
                           "Top-2 overlap \u0394", "McNemar p (Top-1)"};
    static const int rates[4] = {RS_STATS_TOP1, RS_STATS_TOP2, RS_STATS_TOP2_UNORDERED, RS_STATS_OVERLAP};
    rs_table *t = rs_table_create("Paired differences to the baseline, all MoE layers (percentage points, paired "
                                  "bootstrap over images)", "", 7, keys, heads);
    for (int i = 0; t && i < R->n; i++) {
        const rs_stats_comparison *cmp = cmps[i];
        if (!cmp)
            continue;
        const rs_run_info *r = &R->info[i], *b = &R->info[R->baseline[i]];
        char model[160], rl[200], bl[200];
        model_label(r, model, sizeof model);
        snprintf(rl, sizeof rl, "run %" PRId64 " %s", r->id, model);
        model_label(b, model, sizeof model);
        snprintf(bl, sizeof bl, "run %" PRId64 " %s", b->id, model);
        char id[32], vs[40];
        run_name(r, id, sizeof id);
        snprintf(vs, sizeof vs, "vs_run%" PRId64, b->id);
        int row = rs_table_add_row(t, NULL, "all", vs);
        rs_table_set_row_run(t, row, id);
        rs_table_set_text(t, row, 0, rl);
        rs_table_set_text(t, row, 1, bl);
        int cell = rs_stats_cell(cmp->a, cmp->a->views, cmp->a->layers);
        for (int k = 0; k < 4; k++) {
            const rs_stats_diff *df = &cmp->diff[(size_t)cell * RS_STATS_NUM_RATES + rates[k]];
            if (df->valid)
                rs_table_set_diff(t, row, 2 + k, df->value, df->boot_valid, df->boot_lo, df->boot_hi);
        }
        const rs_stats_mcnemar *mc = &cmp->mcnemar[cell];
        if (mc->valid && mc->p < 1e-300) /* below double's range the p-value is only a bound */
            rs_table_set_text(t, row, 6, "< 1e-300");
        else if (mc->valid)
            rs_table_set_number(t, row, 6, mc->p, -1, mc->pairs);
    }
    if (t)
        rs_table_set_note(t, "McNemar treats patches as independent (they are not), so its p is optimistic; "
                             "the bootstrap interval is the primary comparison.");
    return t;
}

static void multi_report(report *R)
{
    doc *d = &R->d;
    char buf[512], path[4096];

    /* Headline (Table 2 form): the pair runs (all runs when there is none). */
    bool any_pair = false;
    for (int i = 0; i < R->n; i++)
        any_pair |= !is_noise(&R->info[i]);
    /* which comparisons the last column holds, in words */
    char pairs[256] = "";
    for (int i = 0, len = 0; i < R->n && len < (int)sizeof pairs; i++) {
        int b = R->baseline[i];
        if (b >= 0 && (!any_pair || !is_noise(&R->info[i])))
            len += snprintf(pairs + len, sizeof pairs - (size_t)len, "%srun %" PRId64 " vs run %" PRId64,
                            len ? ", " : "", R->info[i].id, R->info[b].id);
    }
    add(d, IT_H2, "Headline: routing consistency", NULL);
    addf(d, IT_PARA,
         "In the form of the PRC work's Table 2: one row per run and MoE layer plus the overall row (all MoE "
         "layers), %s. Rates in percent with %.0f %% bootstrap intervals over images; the last column is the paired "
         "Top-1 difference (paired bootstrap over images) to the run's baseline, the first run given before it "
         "with the same protocol and top-k (else the same protocol), where the runs are comparable%s%s%s.",
         any_pair ? "pair runs" : "all runs (no pair run given)", 100 * R->st[0]->level, pairs[0] ? " (" : "", pairs,
         pairs[0] ? ")" : "");
    {
        const char *keys[] = {"run", "model", "layer", "top1", "top2", "top2_unordered", "pairs", "top1_diff"};
        const char *heads[] = {"Run", "Model", "Layer", "Top-1", "Top-2", "Top-2 (order-agnostic)", "Pairs",
                               "Top-1 \u0394 vs baseline"};
        rs_table *t = rs_table_create("Routing consistency per run (%, view 1 vs view 0 / all views pooled)",
                                      "", 8, keys, heads);
        /* each shown run against its baseline; owned here, freed after both tables */
        rs_stats_comparison **cmps = calloc((size_t)R->n, sizeof *cmps);
        if ((!t || !cmps) && !d->rc)
            d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
        int ncmp = 0;
        for (int i = 0; t && cmps && i < R->n; i++) {
            const rs_run_info *r = &R->info[i];
            if (any_pair && is_noise(r))
                continue;
            const rs_stats *st = R->st[i];
            int b = R->baseline[i];
            if (b >= 0 && !R->flag[i][0]) {
                rs_stats_options o = {.resamples = R->opt->resamples ? R->opt->resamples : 0,
                                      .seed = RS_STATS_DEFAULT_SEED,
                                      .name = R->opt->db};
                rs_error e2;
                if (rs_stats_compare(R->store, R->info[b].id, R->store, r->id,
                                     &o, &cmps[i], &e2))
                    cmps[i] = NULL;
                ncmp += cmps[i] != NULL;
            }
            const rs_stats_comparison *cmp = cmps[i];
            for (int l = 0; l <= st->layers; l++) {
                char rn[32], model[64], lh[64], lk[64];
                run_name(r, rn, sizeof rn);
                model_label(r, model, sizeof model);
                rs_report_layer_label(r, l, lh, sizeof lh, true);
                rs_report_layer_label(r, l, lk, sizeof lk, false);
                if (l == st->layers)
                    snprintf(lh, sizeof lh, "overall");
                int cell = rs_stats_cell(st, st->views, l);
                const rs_stats_agreement *a = &st->agree[cell];
                int row = rs_table_add_row(t, "all", lk, NULL);
                rs_table_set_row_run(t, row, rn);
                char rlab[80];
                snprintf(rlab, sizeof rlab, "run %s%s", rn, R->flag[i][0] ? " (not comparable)" : "");
                rs_table_set_text(t, row, 0, rlab);
                rs_table_set_text(t, row, 1, model);
                rs_table_set_text(t, row, 2, lh);
                set_rate(t, row, 3, &a->rate[RS_STATS_TOP1], a->n.pairs);
                set_rate(t, row, 4, &a->rate[RS_STATS_TOP2], a->n.pairs);
                set_rate(t, row, 5, &a->rate[RS_STATS_TOP2_UNORDERED], a->n.pairs);
                rs_table_set_count(t, row, 6, a->n.pairs);
                if (cmp) {
                    const rs_stats_diff *df = &cmp->diff[(size_t)cell * RS_STATS_NUM_RATES + RS_STATS_TOP1];
                    if (df->valid)
                        rs_table_set_diff(t, row, 7, df->value, df->boot_valid, df->boot_lo, df->boot_hi);
                }
            }
        }
        add_table(d, t, "headline");
        if (ncmp > 0)
            add_table(d, baseline_differences(R, cmps), "differences");
        for (int i = 0; cmps && i < R->n; i++)
            rs_stats_comparison_free(cmps[i]);
        free(cmps);
    }

    /* Accuracy (Table 1 form). */
    add(d, IT_H2, "Accuracy", NULL);
    add(d, IT_PARA,
        "In the form of the PRC work's Table 1: clean accuracy and accuracy per noise severity (noise runs), and "
        "the accuracy on the augmented views (pair runs), in percent with Wilson intervals.",
        NULL);
    {
        int sev = 0;
        for (int i = 0; i < R->n; i++)
            if (is_noise(&R->info[i]) && R->info[i].num_views - 1 > sev)
                sev = R->info[i].num_views - 1;
        int nc = 4 + sev + 1;
        const char **keys = calloc((size_t)nc, sizeof *keys), **heads = calloc((size_t)nc, sizeof *heads);
        char (*kb)[32] = calloc((size_t)nc, sizeof *kb), (*hb)[48] = calloc((size_t)nc, sizeof *hb);
        rs_table *t = NULL;
        if (keys && heads && kb && hb) {
            keys[0] = "run", heads[0] = "Run";
            keys[1] = "model", heads[1] = "Model";
            keys[2] = "protocol", heads[2] = "Protocol";
            keys[3] = "clean", heads[3] = "Clean";
            for (int s = 1; s <= sev; s++) {
                snprintf(kb[3 + s], sizeof kb[0], "severity%d", s);
                snprintf(hb[3 + s], sizeof hb[0], "Severity %d", s);
                keys[3 + s] = kb[3 + s], heads[3 + s] = hb[3 + s];
            }
            keys[nc - 1] = "augmented", heads[nc - 1] = "Augmented views";
            t = rs_table_create("Accuracy (%, Wilson interval)", "", nc, keys, heads);
        }
        for (int i = 0; t && i < R->n; i++) {
            const rs_run_info *r = &R->info[i];
            const rs_stats *st = R->st[i];
            char id[32], rn[32], model[64];
            run_name(r, id, sizeof id);
            snprintf(rn, sizeof rn, "run %" PRId64, r->id);
            model_label(r, model, sizeof model);
            int row = rs_table_add_row(t, NULL, NULL, NULL);
            rs_table_set_row_run(t, row, id);
            rs_table_set_text(t, row, 0, rn);
            rs_table_set_text(t, row, 1, model);
            rs_table_set_text(t, row, 2, r->protocol);
            for (int c = 3; c < nc; c++) {
                const rs_stats_accuracy *a = NULL;
                if (is_noise(r) && c - 3 < st->views && c < nc - 1)
                    a = &st->accuracy[c - 3];
                else if (!is_noise(r) && c == nc - 1)
                    a = &st->accuracy[st->views];
                if (a && a->valid)
                    rs_table_set_rate(t, row, c, a->value, true, a->wilson_lo, a->wilson_hi, true, a->wilson_lo,
                                      a->wilson_hi, a->labelled);
            }
        }
        if (!t && !d->rc)
            d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
        else
            add_table(d, t, "accuracy");
        free(keys);
        free(heads);
        free(kb);
        free(hb);
    }

    /* Severity sweep of all noise runs. */
    int nn = 0;
    const rs_stats *nst[64];
    const rs_run_info *nri[64];
    for (int i = 0; i < R->n && nn < 64; i++)
        if (is_noise(&R->info[i]) && R->info[i].num_views > 1)
            nst[nn] = R->st[i], nri[nn++] = &R->info[i];
    if (nn) {
        add(d, IT_H2, "Severity sweep", NULL);
        fig_path(R, "sweep.png", path, sizeof path);
        if (!d->rc)
            d->rc = rs_render_sweep(nst, nri, nn, -1, path, d->err);
        figure(R, "sweep.png",
               "Top-1 agreement with the clean view against the noise severity for every noise run, all MoE layers "
               "pooled, with bootstrap bands.");
        fig_path(R, "accuracy.png", path, sizeof path);
        if (!d->rc)
            d->rc = rs_render_accuracy(nst, nri, nn, path, d->err);
        figure(R, "accuracy.png", "Accuracy against the noise severity for every noise run, with Wilson bands.");
    }

    /* Router figures of all runs. */
    add(d, IT_H2, "Router figures", NULL);
    fig_path(R, "router.png", path, sizeof path);
    {
        const rs_run_info **ri = malloc(sizeof *ri * (size_t)R->n);
        if (!ri && !d->rc)
            d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
        for (int i = 0; ri && i < R->n; i++)
            ri[i] = &R->info[i];
        if (!d->rc)
            d->rc = rs_report_render_router((const rs_stats *const *)R->st, ri, R->n, path, d->err);
        free(ri);
    }
    figure(R, "router.png", "PRC score, JSD, routing entropy and load CV per MoE layer for every run.");

    /* Grids of the same images for each run. */
    if (R->opt->images > 0) {
        add(d, IT_H2, "Expert-selection grids", NULL);
        add(d, IT_PARA, "The same images for each run that holds them.", NULL);
        const rs_run_info *r0 = &R->info[0];
        for (int k = 0; k < R->opt->images && k < r0->images_done; k++)
            for (int i = 0; i < R->n; i++)
                if (holds(&R->info[i], r0->offset + k))
                    grid_figure(R, &R->info[i], r0->offset + k);
    }

    /* Largest differences: the first run and its comparable baseline, else the first two runs of
       one protocol over the same images, else any two over the same images. */
    add(d, IT_H2, "Largest differences", NULL);
    int ia = -1, ib = -1;
    for (int pass = 0; pass < 3 && ib < 0; pass++)
        for (int i = 0; i < R->n && ib < 0; i++)
            for (int j = i + 1; j < R->n && ib < 0; j++)
                if (!strcmp(R->info[i].data, R->info[j].data) && R->info[i].offset == R->info[j].offset &&
                    (pass == 2 || !strcmp(R->info[i].protocol, R->info[j].protocol)) &&
                    (pass >= 1 || (R->baseline[j] == i && !R->flag[j][0])))
                    ia = i, ib = j;
    if (ib < 0) {
        add(d, IT_PARA, "No two runs cover the same images.", NULL);
    } else if (!d->rc) {
        const rs_run_info *a = &R->info[ia], *b = &R->info[ib];
        int64_t *pa = NULL, *aa = NULL, *pb = NULL, *ab = NULL;
        int rc = image_top1(R->store, a, &pa, &aa, d->err);
        if (!rc)
            rc = image_top1(R->store, b, &pb, &ab, d->err);
        int N = a->images_done < b->images_done ? a->images_done : b->images_done;
        int *order = rc ? NULL : malloc(sizeof(int) * (size_t)(N > 0 ? N : 1));
        double *delta = rc ? NULL : malloc(sizeof(double) * (size_t)(N > 0 ? N : 1));
        if (!rc && (!order || !delta))
            rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
        /* An image with two matched pairs moves by 50 points on one patch: rank only images
           where a quarter of the possible pairs matched in both runs. */
        int64_t most = (int64_t)a->patches * a->num_layers * (a->num_views - 1);
        int64_t min_pairs = most / 4 > 1 ? most / 4 : 1;
        int m = 0;
        for (int i = 0; !rc && i < N; i++) {
            if (pa[i] < min_pairs || pb[i] < min_pairs)
                continue;
            delta[i] = (double)ab[i] / (double)pb[i] - (double)aa[i] / (double)pa[i];
            order[m++] = i;
        }
        /* by |delta| descending, then image ascending (stable, deterministic) */
        for (int i = 1; i < m; i++) {
            int x = order[i], j = i;
            while (j > 0 && fabs(delta[order[j - 1]]) < fabs(delta[x]))
                order[j] = order[j - 1], j--;
            order[j] = x;
        }
        if (!rc) {
            snprintf(buf, sizeof buf,
                     "Images whose Top-1 agreement with view 0 (all non-reference views and MoE layers) differs most "
                     "between run %" PRId64 " (A) and run %" PRId64 " (B), among the images with at least %" PRId64
                     " matched patch pairs in both runs%s.",
                     a->id, b->id, min_pairs, R->flag[ib][0] || strcmp(a->protocol, b->protocol) ? "; the runs are not comparable, so the views differ too" : "");
            add(d, IT_PARA, buf, NULL);
            const char *keys[] = {"image", "a", "b", "diff", "pairs_a", "pairs_b"};
            char ha[32], hb2[32];
            snprintf(ha, sizeof ha, "Top-1 run %" PRId64, a->id);
            snprintf(hb2, sizeof hb2, "Top-1 run %" PRId64, b->id);
            const char *heads[] = {"Image", ha, hb2, "B \u2212 A", "Pairs A", "Pairs B"};
            char pair_ids[64];  /* csv/json run field: "A,B" */
            snprintf(pair_ids, sizeof pair_ids, "%" PRId64 ",%" PRId64, a->id, b->id);
            rs_table *t = rs_table_create("Largest per-image differences in Top-1 agreement (%)", pair_ids, 6, keys,
                                          heads);
            for (int k = 0; t && k < m && k < DIFF_IMAGES; k++) {
                int i = order[k];
                char img[32];
                snprintf(img, sizeof img, "%d", a->offset + i);
                int row = rs_table_add_row(t, NULL, NULL, img);
                rs_table_set_text(t, row, 0, img);
                rs_table_set_rate(t, row, 1, (double)aa[i] / (double)pa[i], false, 0, 0, false, 0, 0, pa[i]);
                rs_table_set_rate(t, row, 2, (double)ab[i] / (double)pb[i], false, 0, 0, false, 0, 0, pb[i]);
                rs_table_set_diff(t, row, 3, delta[i], false, 0, 0);
                rs_table_set_count(t, row, 4, pa[i]);
                rs_table_set_count(t, row, 5, pb[i]);
            }
            add_table(d, t, "largest-differences");
            for (int k = 0; k < m && k < DIFF_GRIDS; k++) {
                grid_figure(R, a, a->offset + order[k]);
                grid_figure(R, b, a->offset + order[k]);
            }
        } else {
            d->rc = rc;
        }
        free(pa), free(aa), free(pb), free(ab), free(order), free(delta);
    }

    /* Each run's own tables. */
    for (int i = 0; i < R->n; i++) {
        const rs_run_info *r = &R->info[i];
        char rl[200], rn[32], name[64];
        run_label(r, rl, sizeof rl);
        run_name(r, rn, sizeof rn);
        snprintf(buf, sizeof buf, "Details of %s", rl);
        add(d, IT_H2, buf, NULL);
        snprintf(name, sizeof name, "consistency-run%s", rn);
        add_table(d, rs_report_consistency_table(r, R->st[i], rn, false), name);
        snprintf(name, sizeof name, "router-run%s", rn);
        add_table(d, rs_report_layer_table(r, R->st[i], rn), name);
        if (!is_noise(r))  /* a noise run pools its severities into one matrix: less telling */
            load_transition_figures(R, r, R->st[i], rn);
    }
}

int rs_report_write(rs_store *store, const rs_report_options *opt, rs_error *err)
{
    if (!opt || !opt->out_dir || !*opt->out_dir || opt->num_runs < 1 || opt->images < 0)
        return rs_error_set(err, RS_EINVAL, "report: bad options");
    report R = {.store = store, .opt = opt, .n = opt->num_runs};
    R.info = calloc((size_t)R.n, sizeof *R.info);
    R.st = calloc((size_t)R.n, sizeof *R.st);
    R.flag = calloc((size_t)R.n, sizeof *R.flag);  /* owned here, freed at the end */
    R.baseline = calloc((size_t)R.n, sizeof *R.baseline);
    R.d.err = err;
    R.d.dir = opt->out_dir;
    int rc = !R.info || !R.st || !R.flag || !R.baseline ? rs_error_set(err, RS_ENOMEM, "out of memory") : 0;
    for (int i = 0; !rc && i < R.n; i++) {
        rc = rs_store_get_run(store, opt->runs[i], &R.info[i], err);
        if (!rc && R.info[i].images_done < 1)
            rc = rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 " has no images done", opt->db ? opt->db : "store",
                              opt->runs[i]);
    }
    rs_stats_options so = {.resamples = opt->resamples, .seed = RS_STATS_DEFAULT_SEED, .name = opt->db};
    for (int i = 0; !rc && i < R.n; i++)
        rc = rs_stats_compute(store, R.info[i].id, &so, &R.st[i], err);
    char sub[4096];
    if (!rc)
        rc = make_dir(opt->out_dir, err);
    snprintf(sub, sizeof sub, "%s/tables", opt->out_dir);
    if (!rc)
        rc = make_dir(sub, err);
    snprintf(sub, sizeof sub, "%s/figures", opt->out_dir);
    if (!rc)
        rc = make_dir(sub, err);
    char **prov = NULL;
    int nprov = 0;
    if (!rc) {
        provenance(&R, &prov, &nprov);
        if (!prov)
            rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    if (!rc) {
        R.d.notes = (const char *const *)prov;
        R.d.nnotes = nprov;
        doc *d = &R.d;
        char title[512];
        if (R.n == 1) {
            char rl[200];
            run_label(&R.info[0], rl, sizeof rl);
            snprintf(title, sizeof title, "routerscope report: %s", rl);
        } else {
            int len = snprintf(title, sizeof title, "routerscope comparison report: runs");
            for (int i = 0; i < R.n && len < (int)sizeof title; i++)
                len += snprintf(title + len, sizeof title - (size_t)len, "%s %" PRId64, i ? "," : "", R.info[i].id);
        }
        add(d, IT_H1, title, NULL);
        add(d, IT_PARA, "Provenance", NULL);
        add_list(d, prov, nprov);
        /* Baselines: a PRC run is read against the V-MoE run of the same k, so each run is compared
           with the first run given before it with the same protocol and top-k, else the first of
           its protocol. */
        for (int i = 0; i < R.n; i++) {
            int b = -1;
            for (int pass = 0; pass < 2 && b < 0; pass++)
                for (int j = 0; j < i && b < 0; j++)
                    if (!strcmp(R.info[i].protocol, R.info[j].protocol) &&
                        (pass == 1 || R.info[i].top_k == R.info[j].top_k))
                        b = j;
            R.baseline[i] = b;
            if (b < 0)
                continue;
            comparable(&R.info[b], &R.info[i], R.flag[i], sizeof R.flag[i]);
            if (R.flag[i][0]) {
                char line[512];
                snprintf(line, sizeof line,
                         "Flag: run %" PRId64 " is not comparable with run %" PRId64
                         ": %s. They are reported side by side; paired differences are left out.",
                         R.info[i].id, R.info[b].id, R.flag[i]);
                add(d, IT_PARA, line, NULL);
            }
        }
        if (R.n == 1)
            single_report(&R);
        else
            multi_report(&R);
        rc = d->rc;
    }
    char path[4096];
    if (!rc) {
        snprintf(path, sizeof path, "%s/report.md", opt->out_dir);
        rc = write_md(&R.d, path, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/index.html", opt->out_dir);
        rc = write_html(&R.d, path, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/report.pdf", opt->out_dir);
        rc = write_pdf(&R.d, path, err);
    }
    for (int i = 0; i < nprov; i++)
        free(prov[i]);
    free(prov);
    doc_free(&R.d);
    for (int i = 0; i < R.n; i++) {
        if (R.st)
            rs_stats_free(R.st[i]);
        if (R.info)
            rs_run_info_clear(&R.info[i]);
    }
    free(R.st);
    free(R.info);
    free(R.flag);
    free(R.baseline);
    return rc;
}
