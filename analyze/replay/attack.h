/* attack.h — adversarial attacks on a batch of input images: L-inf PGD, L2 PGD and vmoe's
 * sign steps (the `pgd:` view operation of view.h; definitions in docs/attacks.md).
 *
 * The engine knows nothing of the model. An ORACLE returns, for a batch of pixels, each
 * image's objective value (a scalar to maximise) and its gradient with respect to the
 * pixels; replay.c passes one built on model/grad.h, the unit tests pass closed-form ones.
 *
 * All quantities are in [0,1] pixel units. X0 is the start of the attack (the view's pixels
 * before it); the ε-ball and the [0,1] clip surround X0. With N = steps, an attack calls the
 * oracle N + 1 times and records the objective at every iterate:
 *   objective[t], t < N: the value at iterate x_t, before its step (x_0 is the start point:
 *                        X0 plus the random start, or X0 itself)
 *   objective[N]:        the value at the returned pixels x_N
 *   L-inf PGD: x_0 = clip01(X0 + U(-ε, ε)^d) (or X0);
 *              x_{t+1} = clip01(proj_inf(x_t + α sign(g_t)))
 *   L2 PGD:    x_0 = clip01(X0 + δ), δ uniform in the L2 ball of radius ε (or X0);
 *              x_{t+1} = clip01(proj_2(x_t + α g_t / ‖g_t‖₂)); no step where g_t = 0
 *   vmoe:      x_0 = X0; x_{t+1} = x_t + α sign(g_t) with α = ε/N: no projection, no clip
 * (sign(0) = 0). PGD returns the last iterate x_N, not the best one. The random start of
 * image i is drawn from a GSL mt19937 generator seeded with SEEDS[i] only, so an image's
 * attack does not depend on its place in the batch; as long as the oracle's results do not
 * depend on the batch either (rs_grad's do not), neither does the attack.
 *
 * Errors: the oracle's, passed through; RS_ENOMEM. Nothing is printed. */
#ifndef RS_ATTACK_H
#define RS_ATTACK_H

#include <stddef.h>
#include <stdint.h>

#include "rs_error.h"
#include "input/view.h"

/* Fills VALUE (B) and GRAD (B, numel) = d value / d pixels for PIXELS (B, numel) in [0,1]
 * (vmoe mode may step outside); returns 0 or a negative RS_E* code with ERR filled. */
typedef int (*rs_attack_oracle)(void *ctx, const float *pixels, int batch, float *value, float *grad,
                                rs_error *err);

/* What an attack records per image. Arrays owned by the caller. */
typedef struct rs_attack_record_out {
    float *linf;        /* (B) max |x_N - X0| */
    float *l2;          /* (B) ‖x_N - X0‖₂ */
    float *objective;   /* (B, steps + 1), see above */
} rs_attack_record_out;

/* Attacks the B images X0 (B, NUMEL) under SPEC; writes the final pixels to X (B, NUMEL;
 * must not alias X0) and the records to OUT. */
int rs_attack_run(const rs_attack_spec *spec, const float *x0, int batch, size_t numel, const uint64_t *seeds,
                  rs_attack_oracle oracle, void *ctx, float *x, const rs_attack_record_out *out, rs_error *err);

#endif
