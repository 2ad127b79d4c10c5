/* fuzz_util.h — helpers shared by the libFuzzer targets (fuzz_*.c).
 *
 * The readers under test take file paths, so each input is written to a file in one
 * scratch folder per fuzzing process (created on first use, removed at exit). Harness
 * code only: the process-wide scratch folder is the one piece of global state, which the
 * library itself never has. */
#ifndef RS_FUZZ_UTIL_H
#define RS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The scratch folder, e.g. "/tmp/rs_fuzz_AbC123"; aborts when it cannot be made. */
const char *fz_dir(void);
/* Writes DATA to fz_dir()/NAME and returns that path in PATH (SIZE bytes). Aborts on
 * failure: a harness that cannot write its input is broken, not fuzzing. */
void fz_write(const char *name, const uint8_t *data, size_t size, char *path, size_t path_size);
/* Splits DATA at each occurrence of FZ_SEP into at most MAX parts; returns the count. */
#define FZ_SEP "\n--rs-fuzz-part--\n"
int fz_split(const uint8_t *data, size_t size, const uint8_t **parts, size_t *sizes, int max);

#endif
