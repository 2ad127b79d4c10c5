/* half.h — IEEE 754 binary16 <-> float, for F16 checkpoints and the store's compact
 * router distributions. Exact for every half value; float -> half rounds to nearest even,
 * overflows to infinity, keeps NaN a NaN. */
#ifndef RS_HALF_H
#define RS_HALF_H

#include <stdint.h>

float rs_half_to_float(uint16_t h);
uint16_t rs_float_to_half(float f);

#endif
