/* spec_text.h — what the statistics read from a view's spec text without drawing the view.
 *
 * The statistics and figures need two facts about a stored view that the routing records do
 * not carry: whether the view moves pixels geometrically (so that token j of the view and
 * token j of view 0 are the same pixels), and the attack budget ε of a `pgd:` operation
 * (the grid of an adversarial run). Both are read from the spec text with view.h's parser
 * (the grammar has one owner); nothing is allocated, nothing is printed. */
#ifndef RS_SPEC_TEXT_H
#define RS_SPEC_TEXT_H

#include <stdbool.h>

#include "rs_error.h"

/* True when SPEC holds a geometric operation of its own (crop, flip, rotate, translate).
 * `base:view=V` does not count: a view built on view V shares V's geometry. */
bool rs_spec_has_geometric_op(const char *spec);

/* The ε of SPEC's `pgd:` operation into *EPS ([0,1] pixel units; "4/255" and "0.0157"
 * both parse). Returns 1 when SPEC has a pgd operation, 0 when it has none, RS_EINVAL
 * (rs_view_spec_parse's message quoting SPEC) when SPEC does not parse. */
int rs_spec_attack_eps(const char *spec, double *eps, rs_error *err);

/* The corruption of SPEC when SPEC is one `corrupt:` operation and nothing else (a view of
 * the corruptions protocol): *ID (corrupt.h's id) and *SEVERITY (1..5). Returns 1 for such
 * a spec, 0 for any other that parses, RS_EINVAL (rs_view_spec_parse's message) when SPEC
 * does not parse. */
int rs_spec_corruption(const char *spec, int *id, int *severity, rs_error *err);

#endif
