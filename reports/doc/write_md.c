/* write_md.c — the document (doc.h) as Markdown: tables inline with links to their csv/tex
 * files, figures as image links. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "doc.h"

/* Markdown text outside tables: escape the characters that would start markup. */
static void md_esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (strchr("\\`*_[]<>|#", *s))
            fputc('\\', f);
        fputc(*s, f);
    }
}

/* The contents: the section headings, numbered. */
static void md_toc(FILE *f, const rs_doc *d)
{
    fputs("Contents:\n\n", f);
    for (int i = 0, k = 1; i < d->n; i++) {
        if (d->items[i].kind != RS_DOC_H2)
            continue;
        fprintf(f, "%d. ", k++);
        md_esc(f, d->items[i].text);
        fputc('\n', f);
    }
    fputc('\n', f);
}

int rs_doc_write_md(const rs_doc *d, const char *path, rs_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
    for (int i = 0; i < d->n; i++) {
        const rs_doc_item *it = &d->items[i];
        switch (it->kind) {
        case RS_DOC_H1: fputs("# ", f); md_esc(f, it->text); fputs("\n\n", f); break;
        case RS_DOC_H2: fputs("## ", f); md_esc(f, it->text); fputs("\n\n", f); break;
        case RS_DOC_PARA: md_esc(f, it->text); fputs("\n\n", f); break;
        case RS_DOC_TOC: md_toc(f, d); break;
        case RS_DOC_LIST: {
            const char *rest = it->text, *p;
            size_t n;
            while (rs_doc_next_line(&rest, &p, &n)) {
                char line[2048];
                snprintf(line, sizeof line, "%.*s", (int)n, p);
                fputs("- ", f);
                md_esc(f, line);
                fputc('\n', f);
            }
            fputc('\n', f);
            break;
        }
        case RS_DOC_TABLE:
            fputs(it->text, f);
            fprintf(f, "Files: [tables/%s.csv](tables/%s.csv), [tables/%s.tex](tables/%s.tex)\n\n", it->file,
                    it->file, it->file, it->file);
            break;
        case RS_DOC_FIGURE:
            /* the caption once, under the image (alt text: the file) */
            fprintf(f, "![%s](%s)\n\n", it->file, it->file);
            md_esc(f, it->text);
            fputs("\n\n", f);
            break;
        }
    }
    if (fclose(f))
        return rs_error_set(err, RS_EIO, "%s: %s", path, strerror(errno));
    return 0;
}
