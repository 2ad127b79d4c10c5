/* fuzz_view.c — view specs and protocols. The input is text: PROTOCOL, then AUGMENT,
 * then CUSTOM, separated by FZ_SEP (fuzz_util.h); every resulting spec is parsed, drawn,
 * rendered on a small image and matched against the first view. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "input/view.h"

enum { H = 16, W = 12, C = 3, P = 4 };

static char *dup_part(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void exercise(char **specs, int count)
{
    static float src[C * H * W], out[C * H * W];
    for (int i = 0; i < C * H * W; i++)
        src[i] = (float)(i % 17) / 16.0f;
    rs_view first = {0};
    for (int v = 0; v < count; v++) {
        rs_view_spec spec;
        rs_error err;
        if (rs_view_spec_parse(specs[v], &spec, &err) != 0)
            continue;
        rs_view view;
        rs_view_draw(&spec, W, H, 7, 3, v, &view);
        rs_view_render(&view, src, C, H, W, out);
        if (v == 0)
            first = view;
        int16_t match[(H / P) * (W / P)];
        rs_view_match(&first, &view, H, W, P, match);
        free(rs_view_params_json(&view));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *parts[3];
    size_t sizes[3];
    int n = fz_split(data, size, parts, sizes, 3);
    char *text[3] = {NULL, NULL, NULL};
    for (int i = 0; i < n; i++)
        text[i] = dup_part(parts[i], sizes[i]);
    /* A lone part is a spec; several are a protocol call. */
    if (n == 1) {
        exercise(text, 1);
    } else {
        char **specs = NULL;
        int count = 0;
        rs_error err;
        /* The second part is pair's augment, intervene's perturbation and adversarial's attack,
         * the third custom's views and adversarial's eps list; intervene sees MoE blocks 1 and 3. */
        static const int blocks[] = {1, 3};
        rs_protocol_args args = {.augment = text[1], .custom = n > 2 ? text[2] : NULL, .attack = text[1],
                                 .eps = n > 2 ? text[2] : NULL, .moe_blocks = blocks, .num_moe = 2};
        if (rs_protocol_views(text[0], &args, &specs, &count, &err) == 0) {
            exercise(specs, count);
            for (int i = 0; i < count; i++)
                free(specs[i]);
            free(specs);
        }
    }
    for (int i = 0; i < 3; i++)
        free(text[i]);
    return 0;
}
