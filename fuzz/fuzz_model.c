/* fuzz_model.c — the safetensors loader, the config parser and, for models small enough
 * to run in a blink, one forward pass of a fixed image. */
#include <stdint.h>
#include <stdlib.h>

#include "forward.h"
#include "fuzz_util.h"
#include "model.h"

/* Forward passes cost T²·D and T·D·M per block; larger models are only opened. */
static int small_enough(const rs_config *c)
{
    long t = rs_config_tokens(c);
    return c->image_h * c->image_w <= 64 * 64 && t <= 65 && c->hidden <= 64 && c->mlp_dim <= 256 &&
           c->depth <= 4 && c->num_experts <= 16 && c->num_classes <= 100;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[256];
    fz_write("model.safetensors", data, size, path, sizeof path);
    rs_model *m = NULL;
    rs_error err;
    if (rs_model_open(path, &m, &err) != 0)
        return 0;
    if (small_enough(&m->cfg)) {
        size_t n = (size_t)m->cfg.channels * m->cfg.image_h * m->cfg.image_w;
        float *image = malloc(n * sizeof *image);
        rs_forward *f = NULL;
        if (image && rs_forward_create(m, 1, 1, &f, &err) == 0) {
            for (size_t i = 0; i < n; i++)
                image[i] = (float)(i % 7) / 3.0f - 1.0f;
            rs_forward_run(f, image, 1, &err);
        }
        rs_forward_free(f);
        free(image);
    }
    rs_model_close(m);
    return 0;
}
