/* attack.c — PGD and vmoe's sign steps against an oracle (contract in attack.h).
 *
 * Arithmetic: each update is computed in double from the float pixels and rounded once to
 * float, so ε = 0 gives back X0 bit for bit (the clamp to [X0 - 0, X0 + 0] is X0 itself). */
#include "attack.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static double sign(float g)
{
    return g > 0 ? 1 : g < 0 ? -1 : 0;
}

/* x_0 for one image of N values: X0 plus a uniform draw from the ε-ball, clipped. */
static void random_start(const rs_attack_spec *a, const float *x0, size_t n, uint64_t seed, float *x)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, (unsigned long)seed);
    if (a->norm == RS_ATTACK_LINF) {
        for (size_t k = 0; k < n; k++)
            x[k] = (float)clamp(x0[k] + a->eps * (2 * gsl_rng_uniform(rng) - 1), 0, 1);
    } else {
        /* Uniform in the ball: a uniform direction (normalised Gaussian) at radius ε·U^(1/n). */
        double norm = 0;
        for (size_t k = 0; k < n; k++) {
            double z = gsl_ran_gaussian_ziggurat(rng, 1.0);
            x[k] = (float)z;
            norm += z * z;
        }
        double radius = a->eps * pow(gsl_rng_uniform(rng), 1.0 / (double)n);
        double scale = norm > 0 ? radius / sqrt(norm) : 0;
        for (size_t k = 0; k < n; k++)
            x[k] = (float)clamp(x0[k] + scale * x[k], 0, 1);
    }
    gsl_rng_free(rng);
}

static void step_linf(const rs_attack_spec *a, const float *x0, const float *g, size_t n, float *x)
{
    for (size_t k = 0; k < n; k++) {
        double v = clamp(x[k] + a->alpha * sign(g[k]), (double)x0[k] - a->eps, (double)x0[k] + a->eps);
        x[k] = (float)clamp(v, 0, 1);
    }
}

static void step_l2(const rs_attack_spec *a, const float *x0, const float *g, size_t n, float *x, double *delta)
{
    double gnorm = 0, dnorm = 0;
    for (size_t k = 0; k < n; k++)
        gnorm += (double)g[k] * g[k];
    gnorm = sqrt(gnorm);
    for (size_t k = 0; k < n; k++) {
        delta[k] = x[k] + (gnorm > 0 ? a->alpha * g[k] / gnorm : 0) - x0[k];
        dnorm += delta[k] * delta[k];
    }
    dnorm = sqrt(dnorm);
    double scale = dnorm > a->eps ? a->eps / dnorm : 1;
    for (size_t k = 0; k < n; k++)
        x[k] = (float)clamp(x0[k] + delta[k] * scale, 0, 1);
}

static void step_vmoe(const rs_attack_spec *a, const float *g, size_t n, float *x)
{
    for (size_t k = 0; k < n; k++)
        x[k] = (float)(x[k] + a->alpha * sign(g[k]));
}

static void record_norms(const float *x0, const float *x, size_t n, float *linf, float *l2)
{
    double m = 0, s = 0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs((double)x[k] - x0[k]);
        m = d > m ? d : m;
        s += d * d;
    }
    *linf = (float)m;
    *l2 = (float)sqrt(s);
}

int rs_attack_run(const rs_attack_spec *spec, const float *x0, int batch, size_t numel, const uint64_t *seeds,
                  rs_attack_oracle oracle, void *ctx, float *x, const rs_attack_record_out *out, rs_error *err)
{
    size_t total = (size_t)batch * numel;
    int N = spec->steps;
    float *grad = malloc(sizeof(float) * (total ? total : 1));
    float *value = malloc(sizeof(float) * (size_t)(batch > 0 ? batch : 1));
    double *delta = spec->norm == RS_ATTACK_L2 ? malloc(sizeof(double) * (numel ? numel : 1)) : NULL;
    if (!grad || !value || (spec->norm == RS_ATTACK_L2 && !delta)) {
        free(grad);
        free(value);
        free(delta);
        return rs_error_set(err, RS_ENOMEM, "out of memory for an attack on %d images", batch);
    }
    for (int i = 0; i < batch; i++) {
        if (spec->random_start && !spec->vmoe)
            random_start(spec, x0 + i * numel, numel, seeds[i], x + i * numel);
        else
            memcpy(x + i * numel, x0 + i * numel, sizeof(float) * numel);
    }
    int rc = 0;
    for (int t = 0; t <= N && !rc; t++) {
        if ((rc = oracle(ctx, x, batch, value, grad, err)))
            break;
        for (int i = 0; i < batch; i++)
            out->objective[(size_t)i * (N + 1) + t] = value[i];
        if (t == N)
            break;
        for (int i = 0; i < batch; i++) {
            const float *xi0 = x0 + i * numel, *gi = grad + i * numel;
            float *xi = x + i * numel;
            if (spec->vmoe)
                step_vmoe(spec, gi, numel, xi);
            else if (spec->norm == RS_ATTACK_L2)
                step_l2(spec, xi0, gi, numel, xi, delta);
            else
                step_linf(spec, xi0, gi, numel, xi);
        }
    }
    for (int i = 0; !rc && i < batch; i++)
        record_norms(x0 + i * numel, x + i * numel, numel, &out->linf[i], &out->l2[i]);
    free(grad);
    free(value);
    free(delta);
    return rc;
}
