/* rs_le.h — little-endian 16- and 32-bit values in byte buffers: how the store's BLOBs hold
 * patch matches (int16 as uint16), float16 router probabilities (as uint16) and float32 gates
 * and attack objectives, whatever the host's byte order.
 *
 * Header-only (static inline), like half.h, so that sqlite/rs_sqlite.c, a loadable extension
 * that links no routerscope library, decodes exactly as analyze/store/ encodes. P points at 2 or 4 bytes;
 * no alignment is needed. A float travels as its IEEE 754 bit pattern (NaN payloads, -0 and
 * infinities unchanged). No errors, no allocation. */
#ifndef RS_LE_H
#define RS_LE_H

#include <stdint.h>
#include <string.h>

static inline void rs_le_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline uint16_t rs_le_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline void rs_le_put_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static inline float rs_le_get_f32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
