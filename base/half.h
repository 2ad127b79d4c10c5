/* half.h — IEEE 754 binary16 <-> float, for F16 checkpoints and the store's compact
 * router distributions. Exact for every half value; float -> half rounds to nearest even,
 * overflows to infinity, keeps NaN a NaN. Also float -> bfloat16 -> float rounding, for
 * vmoe's bfloat16 dispatch (model/dispatch.h).
 *
 * Header-only (static inline), like rs_le.h: the store's reader and its record check convert
 * every stored probability, millions per run, and a call per value cost them a tenth of
 * their time; sqlite/rs_sqlite.c needs no object file for them either. */
#ifndef RS_HALF_H
#define RS_HALF_H

#include <stdint.h>
#include <string.h>

static inline float rs_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        /* Subnormal half: man * 2^-24, exactly representable in float. */
        float v = (float)man * (1.0f / 16777216.0f);
        memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t rs_float_to_half(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) /* NaN: keep it quiet and non-zero */
        return sign | 0x7e00;
    if (abs >= 0x477ff000u) /* rounds to 65520 or more: infinity */
        return sign | 0x7c00;
    if (abs < 0x38800000u) {
        /* Subnormal or zero half: value / 2^-24, rounded to nearest even by the FPU. */
        float a;
        memcpy(&a, &abs, 4);
        float scaled = a * 16777216.0f; /* exact: a power-of-two scale */
        uint32_t m = (uint32_t)scaled;
        float rest = scaled - (float)m;
        if (rest > 0.5f || (rest == 0.5f && (m & 1)))
            m++;
        return sign | (uint16_t)m;
    }
    /* Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even. */
    uint32_t h = ((abs - 0x38000000u) >> 13);
    uint32_t dropped = abs & 0x1fff;
    h += (dropped > 0x1000) | ((dropped == 0x1000) & h); /* branch-free: the bit is random */
    return sign | (uint16_t)h;
}

/* F rounded to the nearest bfloat16 (8 mantissa bits), ties to even, as a float: what
 * `x.astype(jnp.bfloat16).astype(jnp.float32)` and torch's `x.bfloat16().float()` give.
 * Overflow goes to infinity and a NaN stays a NaN (returned as it is). */
static inline float rs_float_round_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return f;
    bits += 0x7fffu + ((bits >> 16) & 1u); /* the carry rounds up past half, and at half when odd */
    bits &= 0xffff0000u;
    memcpy(&f, &bits, 4);
    return f;
}

#endif
