/* predict.h — the model's rules at either end of the forward pass: how [0,1] pixels become
 * its input (the config's per-channel normalisation) and how its logits become a
 * prediction (the class and its softmax probability). Everything that feeds the model or
 * reads its answer — the forward and gradient passes here, evaluation and replay in
 * analyze/ — uses these functions, so a rule exists once.
 *
 * Bit for bit: the normalisation is the same float operations as PyTorch's (x - m) / s,
 * and nothing here has a product feeding a sum, so model/'s FMA contraction
 * (-ffp-contract=fast) rounds it exactly as the uncontracted build would.
 * Pure functions: no allocation, no state, no errors. */
#ifndef RS_PREDICT_H
#define RS_PREDICT_H

#include <stddef.h>

#include "config.h"

/* DST[i] = (SRC[i] - mean[CH]) / std[CH] for N values of channel CH of C's input; DST may
 * be SRC (in place). */
void rs_model_normalize_span(const rs_config *c, int ch, const float *src, float *dst, size_t n);

/* In place, IMAGE (C,H,W) with C's channels and image size: every channel plane through
 * rs_model_normalize_span. */
void rs_model_normalize(const rs_config *c, float *image);

/* The normalisation's backward: DST[i] = SRC[i] / std[CH] turns N gradients with respect
 * to normalised values of channel CH into gradients with respect to pixels. DST may be
 * SRC. */
void rs_model_normalize_backward_span(const rs_config *c, int ch, const float *src, float *dst, size_t n);

/* The prediction for one image's LOGITS (K >= 1): the class with the largest logit (ties
 * to the lower class). When PROB is set it receives that class's softmax probability,
 * 1 / sum_k exp(logits[k] - logits[class]) summed in double. */
int rs_model_predict(const float *logits, int K, float *prob);

#endif
