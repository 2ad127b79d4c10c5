/* doc.h — the report's document model: its content built once as a list of items
 * (headings, paragraphs, lists, tables, figures), then written as Markdown (write_md.c),
 * HTML (write_html.c) and PDF (write_pdf.c). Internal to reports/.
 *
 * Building never fails midway for the caller: the first error (out of memory, a table
 * file that cannot be written) is kept in d->rc / *d->err and every later rs_doc_add*
 * does nothing, so a section is written straight through and d->rc checked once.
 * Items own their strings; rs_doc_free releases them. */
#ifndef RS_DOC_H
#define RS_DOC_H

#include <stdbool.h>
#include <stddef.h>

#include "rs_error.h"
#include "tables/table.h"

/* RS_DOC_TOC: the table of contents, drawn by each writer from the RS_DOC_H2 items. */
typedef enum { RS_DOC_H1, RS_DOC_H2, RS_DOC_PARA, RS_DOC_LIST, RS_DOC_TABLE, RS_DOC_FIGURE, RS_DOC_TOC } rs_doc_kind;

typedef struct rs_doc_item {
    rs_doc_kind kind;
    char *text;     /* heading / paragraph / list lines ('\n') / table md / figure caption */
    char *file;     /* table: its name under tables/; figure: path relative to the output folder */
} rs_doc_item;

typedef struct rs_doc {
    rs_doc_item *items;
    int n, cap;
    const char *dir;            /* the output folder (tables/ and figures/ inside) */
    const char *const *notes;   /* provenance lines, written under every csv/tex table */
    int nnotes;
    rs_error *err;
    int rc;                     /* first error, 0 while none */
    char *explorer;             /* the routing explorer's data (JSON, sections/explorer.h), owned;
                                 * NULL: none. Only the HTML page shows it. */
} rs_doc;

/* Appends an item with copies of TEXT (NULL: "") and FILE (may be NULL). */
void rs_doc_add(rs_doc *d, rs_doc_kind kind, const char *text, const char *file);
void rs_doc_addf(rs_doc *d, rs_doc_kind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A list item of the N LINES (NULL lines as empty ones). */
void rs_doc_add_list(rs_doc *d, char **lines, int n);
/* Table T (owned, freed here; NULL counts as out of memory) as NAME: writes
 * DIR/tables/NAME.{csv,tex} with the notes and keeps its Markdown rendering inline. */
void rs_doc_add_table(rs_doc *d, rs_table *t, const char *name);
void rs_doc_free(rs_doc *d);

/* Steps through the lines of a text (an item's list lines, a table's Markdown): at *P,
 * sets *LINE and *LEN (without its '\n') and moves *P past it; false at the end. */
bool rs_doc_next_line(const char **p, const char **line, size_t *len);

/* The writers: RS_EIO naming PATH when it cannot be written. */
int rs_doc_write_md(const rs_doc *d, const char *path, rs_error *err);
/* The HTML page carries the routing explorer (D->explorer, with doc/explorer.js and
 * explorer.css inline) as the section before the first "Appendix" heading. */
int rs_doc_write_html(const rs_doc *d, const char *path, rs_error *err);
/* Landscape A4, creation date pinned; figures are read back from DIR's PNGs. */
int rs_doc_write_pdf(const rs_doc *d, const char *path, rs_error *err);

#endif
