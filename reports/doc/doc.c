/* doc.c — the report's document model (doc.h): items, and tables written to tables/ as
 * they are added. */
#include "doc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rs_doc_add(rs_doc *d, rs_doc_kind kind, const char *text, const char *file)
{
    if (d->rc)
        return;
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 32;
        rs_doc_item *p = realloc(d->items, sizeof *p * (size_t)cap);
        if (!p) {
            d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
            return;
        }
        d->items = p, d->cap = cap;
    }
    rs_doc_item *it = &d->items[d->n];
    it->kind = kind;
    it->text = strdup(text ? text : "");
    it->file = file ? strdup(file) : NULL;
    if (!it->text || (file && !it->file)) {
        free(it->text);
        free(it->file);
        d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
        return;
    }
    d->n++;
}

void rs_doc_addf(rs_doc *d, rs_doc_kind kind, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rs_doc_add(d, kind, buf, NULL);
}

bool rs_doc_next_line(const char **p, const char **line, size_t *len)
{
    if (!**p)
        return false;
    const char *e = strchr(*p, '\n');
    *line = *p;
    *len = e ? (size_t)(e - *p) : strlen(*p);
    *p += *len + (e ? 1 : 0);
    return true;
}

void rs_doc_free(rs_doc *d)
{
    for (int i = 0; i < d->n; i++) {
        free(d->items[i].text);
        free(d->items[i].file);
    }
    free(d->items);
    free(d->explorer);
}

static int write_tables_file(rs_doc *d, rs_table *t, const char *path, rs_table_format fmt)
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
void rs_doc_add_table(rs_doc *d, rs_table *t, const char *name)
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
        rs_doc_add(d, RS_DOC_TABLE, md, name);
    } else {
        d->rc = rc;
    }
    free(md);
    rs_table_free(t);
}

void rs_doc_add_list(rs_doc *d, char **lines, int n)
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
    rs_doc_add(d, RS_DOC_LIST, s, NULL);
    free(s);
}
