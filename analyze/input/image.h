/* image.h — decoding PNG and JPEG files, and fitting an image to the model's input.
 *
 * An rs_image holds pixels as floats in [0,1], planar (C,H,W), C = 1 (grey) or 3 (RGB).
 * Alpha is dropped when decoding: the models see opaque images, and compositing onto a
 * background would be a guess. 8-bit samples become v/255, 16-bit ones v/65535.
 *
 * Every function here is reentrant: no global state, each decode owns its libpng or
 * libjpeg objects, so several threads may decode different files at once. A corrupt or
 * truncated file gives one error line naming the file, never a crash; libpng's and
 * libjpeg's longjmp-based errors are caught inside the decoder and never jump past its
 * cleanup. */
#ifndef RS_IMAGE_H
#define RS_IMAGE_H

#include <stdint.h>

#include "rs_error.h"

typedef struct rs_image {
    int channels, height, width;
    float *pixels; /* owned, (channels, height, width), values in [0,1] */
} rs_image;

/* Decodes PATH as PNG or JPEG, chosen by the file's first bytes (not its name). Errors:
 * RS_EIO when the file cannot be opened or read, RS_EFORMAT for anything else (unknown
 * magic, corrupt or truncated data, unsupported colour space, absurd size), RS_ENOMEM. */
int rs_image_decode(const char *path, rs_image *out, rs_error *err);
void rs_image_free(rs_image *im); /* NULL ok; leaves an empty image */

/* Fits IM to (CHANNELS, HEIGHT, WIDTH) floats in OUT (caller-owned, not normalised).
 *
 * Channels: grey is replicated to any CHANNELS; RGB goes to 1 channel as luma
 * 0.299 R + 0.587 G + 0.114 B, to 3 channels unchanged, and to anything else is RS_EINVAL.
 * Size ("shorter side, then centre crop; bilinear"): with s = max(HEIGHT/h, WIDTH/w) the
 * image scaled by s covers the target (one side equal, the other at least as long, its
 * length round(len·s)); samples use align_corners=False coordinates, source = (dst+0.5)/s
 * − 0.5 clamped to the edge, with no antialiasing (as torch's interpolate with
 * antialias=False); the centred HEIGHT×WIDTH window is kept, its offset rounded down.
 * When the image already has the target size, pixels are copied exactly. Luma is taken
 * before resizing and grey replicated after, which only saves work: both are linear.
 * NAME (e.g. the file) only labels errors: RS_EINVAL for an impossible fit, RS_ENOMEM. */
int rs_image_fit(const rs_image *im, int channels, int height, int width, float *out, const char *name,
                 rs_error *err);

/* The same fit for 8-bit planar pixels (C,h,w), C = 1 or 3, as held by IDX and CIFAR
 * sets: when the size matches, OUT = v/255.0f exactly, the same float operations as the
 * PyTorch reference's ToTensor. */
int rs_image_fit_u8(const uint8_t *pixels, int c, int h, int w, int channels, int height, int width, float *out,
                    const char *name, rs_error *err);

/* Decodes PATH and fits it to (CHANNELS, HEIGHT, WIDTH) in OUT, as rs_image_decode then
 * rs_image_fit would, with the same pixels, but with memory bounded by a few times the
 * target rather than by the size the file declares: PNG rows are resized as they are
 * read, and a JPEG declaring more than 8 times the target on each side is decoded at a
 * reduced DCT scale (libjpeg's scale_denom) first, so a small file cannot make a large
 * decode. Errors as rs_image_decode's and rs_image_fit's. */
int rs_image_read_fit(const char *path, int channels, int height, int width, float *out, rs_error *err);

/* The version of the fit, part of a run's identity when it is not 1 (a changed fit must
 * not resume or reuse runs fitted the old way). 2: a JPEG declaring more than 8 times the
 * target on each side is decoded at a reduced DCT scale before the fit; every other image
 * fits bit for bit as in version 1. */
#define RS_IMAGE_FIT_VERSION 2

/* Largest image a decoder accepts, in pixels (8192 x 8192): a small file cannot ask for
 * minutes of decoding. rs_image_read_fit's memory does not grow with it, except for an
 * interlaced PNG, whose rows are all complete only after the last pass: its bytes are
 * held whole, so it has a lower cap (4096 x 4096, at most 128 MB at 16-bit RGBA). A whole
 * decode (rs_image_decode) holds 4 bytes per sample. */
#define RS_IMAGE_MAX_PIXELS (1 << 26)
#define RS_IMAGE_MAX_INTERLACED (1 << 24)

#endif
