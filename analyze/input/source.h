/* source.h — labelled image sets named by a --data spec, turned into model input.
 *
 * Specs:
 *   fashion-mnist:test | fashion-mnist:train  the Debian package dataset-fashion-mnist
 *   idx:IMAGES[,LABELS]                       any IDX pair of 8-bit images, raw or .gz
 *   cifar10:DIR[,train]                       CIFAR-10 binary version: DIR/test_batch.bin, or
 *                                             DIR/data_batch_1..5.bin with ",train"
 *   cifar100:DIR[,train]                      CIFAR-100 binary: DIR/test.bin or DIR/train.bin;
 *                                             the fine label (the second byte) is used
 *   png:DIR                                   every *.png in DIR (not its subfolders), sorted
 *                                             by name (byte order); optional DIR/labels.txt
 *   list:FILE                                 lines "PATH LABEL", PNG or JPEG told apart by
 *                                             their bytes; PATH relative to FILE's folder
 *                                             unless absolute
 * In labels.txt and list files, blank lines and lines starting with # are ignored; the
 * label is the last word of a line, so paths may hold spaces; a label is an integer >= 0,
 * or -1 for unknown. In labels.txt, lines are "FILENAME LABEL", every FILENAME must be
 * one of DIR's PNGs, and PNGs without a line get -1. A list line with a single word (no
 * label) is an unlabelled image.
 *
 * Memory and cost: IDX and CIFAR sets are held in memory as bytes (Fashion-MNIST test:
 * 7.8 MB, CIFAR-10 train: 154 MB); loading an image converts (and if need be resizes) a
 * few kilobytes. png: and list: sets hold only their paths (checked to exist when opened)
 * and decode each image in rs_source_load, so a 50,000-image ImageNet list costs a few
 * megabytes; each load reads, decodes and resizes one file (a 500x375 JPEG to 224x224:
 * about 2 ms on one core, a PNG of that size about 1 ms), fitting rows as they are
 * decoded (rs_image_read_fit): transient memory is a few source rows and the target, not
 * the image (an interlaced PNG holds its bytes whole).
 *
 * Errors are one line naming the file (and the line of a list): "x.png: truncated PNG
 * (IDAT chunk cut short)", "list.txt:7: bad label 'abc'", "cifar/test_batch.bin: size
 * 1234 is not a multiple of 3073". Codes: RS_EINVAL for a bad spec, RS_EIO for a file
 * that cannot be opened or read, RS_EFORMAT for bytes that break their format,
 * RS_ENOMEM. A corrupt file never crashes the reader. */
#ifndef RS_SOURCE_H
#define RS_SOURCE_H

#include <stddef.h>

#include "rs_error.h"

#define RS_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct rs_source rs_source;

/* Opens the set named by SPEC; *OUT is owned by the caller (rs_source_close). */
int rs_source_open(const char *spec, rs_source **out, rs_error *err);
void rs_source_close(rs_source *src); /* NULL ok */

int rs_source_count(const rs_source *src);
/* The label of image INDEX (0..count-1), or -1 when unknown or INDEX is out of range. */
int rs_source_label(const rs_source *src, int index);
/* The fit version (image.h) of SRC's images: RS_IMAGE_FIT_VERSION for sets that may hold
 * JPEGs (list:), 1 for those whose fit never changed (in-memory sets, png:). */
int rs_source_fit_version(const rs_source *src);
/* The spec SRC was opened from; owned by SRC. */
const char *rs_source_name(const rs_source *src);
/* The file image INDEX is read from (png:, list:), owned by SRC; NULL for in-memory sets
 * or an INDEX out of range. */
const char *rs_source_path(const rs_source *src, int index);

/* The images' own size when every image of SRC has it and it is known without decoding
 * (IDX: C = 1, CIFAR: C = 3): returns 1 and fills the pointers. Returns 0 for png: and
 * list: sets, whose sizes are known only image by image. */
int rs_source_shape(const rs_source *src, int *channels, int *height, int *width);

/* Decodes image INDEX and fits it to the model input (CHANNELS, HEIGHT, WIDTH): OUT, a
 * caller-owned array of CHANNELS·HEIGHT·WIDTH floats, receives pixels in [0,1], NOT
 * normalised (the model normalises: rs_model_normalize, predict.h). Fitting is
 * rs_image_fit's (image.h): grey replicated, RGB to luma for one channel, alpha dropped,
 * 8-bit v/255 and 16-bit v/65535, shorter side scaled to cover the target with
 * align_corners=False bilinear sampling, then the centred window; an image already of the
 * target size is copied exactly.
 * Thread safety: SRC is only read, so any number of threads may call this at once for
 * any indices (the same or different) with their own OUT and ERR. */
int rs_source_load(rs_source *src, int index, int channels, int height, int width, float *out, rs_error *err);

/* Loads images FIRST .. FIRST+N-1 into OUT (N, C,H,W) with rs_source_load on THREADS
 * threads. On failure ERR describes the lowest failing index, whatever the timing, so
 * the message does not depend on the thread count. */
int rs_source_load_batch(rs_source *src, int first, int n, int channels, int height, int width, int threads,
                         float *out, rs_error *err);

/* SPEC with every file or folder in it made absolute (realpath), so that the same text
 * always means the same files: the run identity in the store uses it. Paths that do not
 * resolve are kept as written (opening them fails anyway). */
int rs_source_canonical_spec(const char *spec, char *out, size_t size, rs_error *err);

#endif
