/* corrupt.h — the common corruptions of ImageNet-C / CIFAR-10-C (Hendrycks & Dietterich,
 * ICLR 2019) as pixel operations: the view operation `corrupt:name=NAME,severity=K,set=S`.
 * Parameters and order of operations are those of hendrycks/robustness,
 * ImageNet-C/create_c/make_imagenet_c.py (set imagenet) and make_cifar_c.py (set cifar);
 * docs/corruptions.md has the tables, the differences and how far content moves.
 *
 * A corruption changes pixels only, never the geometry: patch j of a corrupted view is
 * compared with patch j of the clean view, as ImageNet-C keeps the label. Images are
 * (C,H,W) planes of [0,1] pixels, C = 1 or 3; a grey image goes through the colour
 * operations as R = G = B and comes back as the ITU-R 601 luma of the result (what a grey
 * loader's convert('L') would read). Every result is truncated to 8 bits as the
 * benchmark's np.uint8(...) does: out = floor(clip(v, 0, 1) * 255) / 255.
 *
 * Randomness: every draw is a uniform number in [0, 1) taken from RNG in a documented order
 * (docs/corruptions.md); normals, Poisson counts and integers are made from those uniforms
 * here, so a reference fed the same uniforms (pytorch/corruptions.py) draws the same
 * corruption. The view layer feeds GSL's mt19937 seeded from (seed, image, view).
 *
 * Owns nothing across calls. Errors: RS_ENOMEM (scratch buffers), RS_EINVAL (unknown
 * corruption or severity; a set other than imagenet or cifar), RS_EFORMAT (libjpeg). */
#ifndef RS_CORRUPT_H
#define RS_CORRUPT_H

#include "rs_error.h"

typedef enum rs_corrupt_id {
    RS_C_GAUSSIAN_NOISE, RS_C_SHOT_NOISE, RS_C_IMPULSE_NOISE, RS_C_DEFOCUS_BLUR, RS_C_GLASS_BLUR,
    RS_C_ZOOM_BLUR, RS_C_FOG, RS_C_BRIGHTNESS, RS_C_CONTRAST, RS_C_ELASTIC_TRANSFORM, RS_C_PIXELATE,
    RS_C_JPEG_COMPRESSION, RS_C_SPECKLE_NOISE, RS_C_GAUSSIAN_BLUR, RS_C_SATURATE, RS_C_MOTION_BLUR, RS_C_SNOW,
    RS_C_FROST, RS_CORRUPT_COUNT
} rs_corrupt_id;

/* The benchmark's fifteen in its order: the corruptions protocol's default. (frost blends
 * our own texture, not the benchmark's photographs: docs/corruptions.md.) */
#define RS_CORRUPT_DEFAULT                                                                                  \
    "gaussian_noise,shot_noise,impulse_noise,defocus_blur,glass_blur,motion_blur,zoom_blur,snow,frost,fog," \
    "brightness,contrast,elastic_transform,pixelate,jpeg_compression"

typedef enum rs_corrupt_set { RS_CSET_AUTO, RS_CSET_IMAGENET, RS_CSET_CIFAR } rs_corrupt_set;

/* The source of uniform numbers in [0, 1). */
typedef struct rs_corrupt_rng {
    double (*uniform)(void *state);
    void *state;
} rs_corrupt_rng;

/* The id of NAME (the benchmark's function name), or -1. */
int rs_corrupt_find(const char *name);
const char *rs_corrupt_name(int id);
/* "noise", "blur", "weather" or "digital" (the benchmark's families; the extras
 * speckle_noise: noise, gaussian_blur: blur, saturate: digital). */
const char *rs_corrupt_family(int id);
/* "imagenet" or "cifar". */
const char *rs_corrupt_set_name(rs_corrupt_set set);
/* The set for a model input of HEIGHT x WIDTH: cifar when both are <= 64 px. */
rs_corrupt_set rs_corrupt_default_set(int height, int width);

/* IMG (C,H,W), C 1 or 3, in place: corruption ID at SEVERITY 1..5 with SET's parameters
 * (AUTO: rs_corrupt_default_set). On an error IMG is unchanged. */
int rs_corrupt_apply(int id, int severity, rs_corrupt_set set, const rs_corrupt_rng *rng, float *img, int C, int H,
                     int W, rs_error *err);

#endif
