/* spec_text.c — facts read from a view's spec text (see spec_text.h), through the one
 * parser of the grammar (view.h). */
#include "spec_text.h"

#include "view.h"

bool rs_spec_has_geometric_op(const char *spec)
{
    rs_view_spec parsed;
    rs_error err = {0};
    /* A stored spec parsed when it was replayed; one that no longer parses is taken as
     * geometric, which only makes the statistics compare matched patches. */
    if (rs_view_spec_parse(spec, &parsed, &err))
        return true;
    for (int i = 0; i < parsed.num_ops; i++) {
        rs_op_kind k = parsed.ops[i].kind;
        if (k == RS_OP_CROP || k == RS_OP_FLIP || k == RS_OP_ROTATE || k == RS_OP_TRANSLATE)
            return true;
    }
    return false;
}

int rs_spec_attack_eps(const char *spec, double *eps, rs_error *err)
{
    *eps = 0;
    rs_view_spec parsed;
    int rc = rs_view_spec_parse(spec, &parsed, err);
    if (rc)
        return rc;
    if (!parsed.attack)
        return 0;
    *eps = parsed.pgd.eps;
    return 1;
}

int rs_spec_corruption(const char *spec, int *id, int *severity, rs_error *err)
{
    *id = *severity = 0;
    rs_view_spec parsed;
    int rc = rs_view_spec_parse(spec, &parsed, err);
    if (rc)
        return rc;
    if (parsed.num_ops != 1 || parsed.ops[0].kind != RS_OP_CORRUPT)
        return 0;
    *id = (int)parsed.ops[0].p[0];
    *severity = (int)parsed.ops[0].p[1];
    return 1;
}
