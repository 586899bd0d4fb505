// FEDLORA_SIMD: compile a hot loop for AVX-512, AVX2 and baseline x86-64 and pick one at load
// time (GCC function multi-versioning); elsewhere (an ARM phone) the compiler's baseline, NEON
// on arm64. Pair it with `#pragma omp simd` and -fopenmp-simd on the source file so that
// reductions vectorize (no OpenMP runtime is involved).
#ifndef FEDLORA_COMMON_SIMD_H_
#define FEDLORA_COMMON_SIMD_H_

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FEDLORA_SIMD __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FEDLORA_SIMD
#endif

#endif  // FEDLORA_COMMON_SIMD_H_
