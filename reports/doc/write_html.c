/* write_html.c — the document (doc.h) as one self-contained HTML page: tables inline,
 * figures as relative links, no external URL; with the routing explorer's data, the
 * explorer (its script and style sheet inline, compiled in from explorer.js / .css). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "doc.h"
#include "explorer_assets.h"

#define EXPLORER_TITLE "Explore the example images"

/* Whether item I is where the explorer goes: the first appendix heading (what a reader
 * reads comes before the appendices), or the end (I == d->n) when there is none. */
static bool explorer_here(const rs_doc *d, int i)
{
    if (!d->explorer)
        return false;
    for (int j = 0; j < d->n; j++)
        if (d->items[j].kind == RS_DOC_H2 && !strncmp(d->items[j].text, "Appendix", 8))
            return j == i;
    return i == d->n;
}

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

/* A table cell: escaped, with the spaces inside brackets and parentheses unbreakable, so
 * that a narrow page wraps "+7.3 [+0.3, +14.4]" before the interval, never inside it. */
static void html_cell(FILE *f, const char *s, size_t n)
{
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        depth += s[i] == '[' || s[i] == '(';
        depth -= depth > 0 && (s[i] == ']' || s[i] == ')');
        if (depth > 0 && s[i] == ' ')
            fputs("&nbsp;", f);
        else
            html_esc(f, s + i, 1);
    }
}

/* The md rendering of a table (table.h) as an HTML table: "### title", pipe rows (the
 * second is the alignment row), other lines as notes. */
static void html_table(FILE *f, const char *md, const char *name)
{
    const char *rest = md, *p;
    size_t n;
    int row = 0;
    bool open = false;
    while (rs_doc_next_line(&rest, &p, &n)) {
        if (n >= 4 && !strncmp(p, "### ", 4)) {
            fputs("<h3>", f);
            html_esc(f, p + 4, n - 4);
            fputs("</h3>\n", f);
        } else if (n > 0 && p[0] == '|') {
            if (!open) {
                fputs("<div class=\"scroll\"><table>\n", f);
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
                    html_cell(f, a, (size_t)(b - a));
                    fprintf(f, "</%s>", tag);
                    c = bar + 1;
                }
                fputs("</tr>\n", f);
            }
            row++;
        } else {
            if (open) {
                fputs("</table></div>\n", f);
                open = false;
            }
            if (n > 0) {
                fputs("<p class=\"note\">", f);
                html_esc(f, p, n);
                fputs("</p>\n", f);
            }
        }
    }
    if (open)
        fputs("</table></div>\n", f);
    fprintf(f, "<p class=\"files\">Files: <a href=\"tables/%s.csv\">tables/%s.csv</a>, "
               "<a href=\"tables/%s.tex\">tables/%s.tex</a></p>\n",
            name, name, name, name);
}

/* The contents: a link to every section heading. */
static void html_toc(FILE *f, const rs_doc *d)
{
    fputs("<nav class=\"toc\"><h2>Contents</h2>\n<ol>\n", f);
    for (int i = 0; i <= d->n; i++) {
        if (explorer_here(d, i))
            fputs("<li><a href=\"#explore\">" EXPLORER_TITLE "</a></li>\n", f);
        if (i == d->n || d->items[i].kind != RS_DOC_H2)
            continue;
        fprintf(f, "<li><a href=\"#s%d\">", i);
        html_esc(f, d->items[i].text, strlen(d->items[i].text));
        fputs("</a></li>\n", f);
    }
    fputs("</ol></nav>\n", f);
}

/* The explorer: its data as JSON in a script element (explorer.h escapes "</"), the
 * script that draws it into the section's div. */
static void html_explorer(FILE *f, const rs_doc *d)
{
    fputs("<section id=\"explore\" class=\"rsx\">\n<h2>" EXPLORER_TITLE "</h2>\n"
          "<p>The expert grids of the example images, to explore: point at a patch (or tap it) to see the "
          "router's top experts and their probabilities there, and at its matched patch in the other views "
          "(the patch whose centre falls in the same view-0 patch). Choose the image, the run, the MoE block "
          "and the view compared with view 0 above the grids.</p>\n"
          "<div id=\"rsx-app\"><p class=\"note\">The explorer needs JavaScript.</p></div>\n"
          "<script type=\"application/json\" id=\"rsx-data\">",
          f);
    fputs(d->explorer, f);
    fputs("</script>\n<script>\n", f);
    fputs(rs_explorer_js, f);
    fputs("</script>\n</section>\n", f);
}

int rs_doc_write_html(const rs_doc *d, const char *path, rs_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
    if (d->n && d->items[0].kind == RS_DOC_H1)
        html_esc(f, d->items[0].text, strlen(d->items[0].text));
    fputs("</title>\n<style>\n"
          "body{font-family:'DejaVu Sans',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
          "color:#222;line-height:1.4}\n"
          "table{border-collapse:collapse;margin:.5em 0;font-size:.85em}\n"
          "th,td{border-bottom:1px solid #ccc;padding:.2em .6em;text-align:left;white-space:nowrap}\n"
          "td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:normal}\n"
          "@media (max-width:1000px){table{font-size:.7em}th,td{padding:.2em .3em}}\n"
          "th{border-bottom:2px solid #444;white-space:normal}\n"
          "img{max-width:100%;border:1px solid #ddd}\n"
          "p.note,p.files{font-size:.85em;color:#555}\n"
          "ul.prov{font-size:.85em;font-family:'DejaVu Sans Mono',monospace;word-break:break-all}\n"
          "figure{margin:1em 0}\n"
          "div.scroll{overflow-x:auto;max-width:100%}\n"
          "nav.toc ol{margin:.3em 0}\n",
          f);
    if (d->explorer)
        fputs(rs_explorer_css, f);
    fputs("</style>\n</head>\n<body>\n", f);
    for (int i = 0; i <= d->n; i++) {
        if (explorer_here(d, i))
            html_explorer(f, d);
        if (i == d->n)
            break;
        const rs_doc_item *it = &d->items[i];
        switch (it->kind) {
        case RS_DOC_H1:
            fputs("<h1>", f);
            html_esc(f, it->text, strlen(it->text));
            fputs("</h1>\n", f);
            break;
        case RS_DOC_H2: /* anchored by item index, so the contents can link to it */
            fprintf(f, "<h2 id=\"s%d\">", i);
            html_esc(f, it->text, strlen(it->text));
            fputs("</h2>\n", f);
            break;
        case RS_DOC_TOC: html_toc(f, d); break;
        case RS_DOC_PARA:
            fputs("<p>", f);
            html_esc(f, it->text, strlen(it->text));
            fputs("</p>\n", f);
            break;
        case RS_DOC_LIST: {
            /* the appendix's provenance lines are commands and hashes: monospaced */
            bool prov = i > 0 && d->items[i - 1].kind == RS_DOC_H2 && !strncmp(d->items[i - 1].text, "Appendix", 8);
            fputs(prov ? "<ul class=\"prov\">\n" : "<ul>\n", f);
            const char *rest = it->text, *line;
            size_t n;
            while (rs_doc_next_line(&rest, &line, &n)) {
                fputs("<li>", f);
                html_esc(f, line, n);
                fputs("</li>\n", f);
            }
            fputs("</ul>\n", f);
            break;
        }
        case RS_DOC_TABLE: html_table(f, it->text, it->file); break;
        case RS_DOC_FIGURE:
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
