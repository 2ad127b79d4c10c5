/* isa_peak — one core's peak rate of the two instructions oneDNN's brgemm kernels multiply
 * with here: vfmadd231ps (float32, 32 flops per zmm instruction) and vdpbf16ps (bfloat16
 * pairs into float32, 64 flops), each as 30 independent accumulator chains so that only
 * the instruction's throughput limits it. It says how fast bf16 products can be without
 * AMX (which gemm.h keeps off): docs/gemm.md.
 *
 *     build/isa_peak [SECONDS]
 *
 * Prints "fma_f32_gflops X" and "dpbf16_gflops Y" (the latter only where the CPU has
 * avx512_bf16; both only with AVX-512). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS(I)                                                                                                    \
    I(0) I(1) I(2) I(3) I(4) I(5) I(6) I(7) I(8) I(9) I(10) I(11) I(12) I(13) I(14) I(15) I(16) I(17) I(18) I(19)     \
        I(20) I(21) I(22) I(23) I(24) I(25) I(26) I(27) I(28) I(29)
#define FMA(i) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #i "\n"
#define DPBF16(i) "vdpbf16ps %%zmm30, %%zmm31, %%zmm" #i "\n"
enum { CHAIN_COUNT = 30, ROUNDS = 1000000 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* GFLOP/s of rounds of 30 instructions of FLOPS each for SECONDS; BF16 picks the instruction. */
static double rate(int bf16, double flops, double seconds)
{
    long rounds = 0;
    double t0 = now(), t;
    do {
        for (int r = 0; r < ROUNDS; r++) {
            if (bf16)
                __asm__ volatile(CHAINS(DPBF16)::: "memory");
            else
                __asm__ volatile(CHAINS(FMA)::: "memory");
        }
        rounds += ROUNDS;
    } while ((t = now()) - t0 < seconds);
    return (double)rounds * CHAIN_COUNT * flops / (t - t0) / 1e9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "isa_peak: this CPU has no AVX-512\n");
        return 1;
    }
    printf("fma_f32_gflops %.1f\n", rate(0, 32.0, seconds));
    if (__builtin_cpu_supports("avx512bf16"))
        printf("dpbf16_gflops %.1f\n", rate(1, 64.0, seconds));
    return 0;
}
