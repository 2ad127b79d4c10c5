/* explorer.h — the data of index.html's routing explorer (doc/write_html.c draws it; the
 * page's script is doc/explorer.js): for each example image of the report
 * (rs_report_example_images) and each run that holds it, everything the page shows when
 * a reader points at a patch, read through store/run.h exactly as the grid figures read
 * it (rs_run_image_routing), never re-derived:
 *   - per view and MoE slot, each patch's recorded top-R experts and their router
 *     probabilities (the `expert` and `gate` columns of `routerscope export`);
 *   - per view, each patch's matched patch of view 0 (`match`, -1 none): the view
 *     correspondence the store records; the page finds a patch's counterparts in the other
 *     views through view 0;
 *   - per view and slot, whether a patch's top-1 differs from its matched view-0 patch
 *     (stats/patch.h's rs_patch_top1_changed, the grid's red border);
 *   - the run (label, k, R, experts and their colours as the grids draw them, the blocks of
 *     the MoE slots, the view specs), the image's label, each view's prediction, and the
 *     views' pixels when the run's data can still be read (8-bit, base64; images larger
 *     than 128 px a side are box-averaged down first), an attacked view's start pixels
 *     (render.h, RS_RENDER_START_PIXELS).
 * With groups of seeds (report.h) one run per method, k and protocol is shown: its lowest
 * training seed, so the page holds the same image under every method, not every run.
 *
 * rs_report_explorer stores the data as compact JSON text in R->d.explorer (owned by the
 * document, doc.h); nothing when the report has no example images. Errors (out of memory,
 * store errors) are kept in R->d like every section's. The format is documented in
 * docs/explorer.md. */
#ifndef RS_EXPLORER_H
#define RS_EXPLORER_H

#include "sections.h"

/* Format version of the explorer's JSON ("version"). */
#define RS_EXPLORER_VERSION 1

void rs_report_explorer(rs_report_state *R);

#endif
