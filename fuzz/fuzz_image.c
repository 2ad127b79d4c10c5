/* fuzz_image.c — PNG and JPEG decoding with the fit to a model input (rs_image_read_fit),
 * the path every png: and list: image takes. */
#include <stdint.h>

#include "fuzz_util.h"
#include "input/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float out[3 * 32 * 32];
    char path[256];
    rs_error err;
    fz_write("image", data, size, path, sizeof path);
    /* Grey and RGB targets take different channel paths; the input's length picks one. */
    int channels = size % 2 ? 1 : 3;
    rs_image_read_fit(path, channels, 32, 24, out, &err);
    return 0;
}
