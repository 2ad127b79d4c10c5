/* fuzz_convert.c — the google-research/vmoe msgpack checkpoint reader. The input holds
 * the .index file and its shards separated by FZ_SEP (fuzz_util.h): part 0 is PREFIX.index,
 * part i is PREFIX.data-(i-1)-of-(N-1). */
#include <stdint.h>
#include <stdio.h>

#include "fuzz_util.h"
#include "vmoe_ckpt.h"

#define MAX_PARTS 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *parts[MAX_PARTS];
    size_t sizes[MAX_PARTS];
    int n = fz_split(data, size, parts, sizes, MAX_PARTS);
    char path[256], name[64];
    fz_write("ckpt.index", parts[0], sizes[0], path, sizeof path);
    for (int i = 1; i < n; i++) {
        snprintf(name, sizeof name, "ckpt.data-%05d-of-%05d", i - 1, n - 1);
        fz_write(name, parts[i], sizes[i], path, sizeof path);
    }
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/ckpt", fz_dir());
    rs_vmoe_ckpt *ck = NULL;
    rs_error err;
    if (rs_vmoe_ckpt_read(prefix, &ck, &err) == 0)
        rs_vmoe_ckpt_find(ck, "params/Encoder/encoder_norm/scale");
    rs_vmoe_ckpt_free(ck);
    /* Stale shards of a longer input must not leak into the next one. */
    for (int i = 1; i < n; i++) {
        snprintf(path, sizeof path, "%s/ckpt.data-%05d-of-%05d", fz_dir(), i - 1, n - 1);
        remove(path);
    }
    return 0;
}
