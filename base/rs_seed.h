/* rs_seed.h — splitmix64 (Steele, Lea and Flood 2014), which turns a seed combined with
 * indices into a well-mixed generator seed: every random draw of routerscope is seeded by
 * a tuple such as (seed, image, view) or (group seed, window), never by a shared stream. */
#ifndef RS_SEED_H
#define RS_SEED_H

#include <stdint.h>

static inline uint64_t rs_seed_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
