/* SDLM's curvature estimate (App. C) for LeNet-5's first block, C1 -> squash -> S2 -> squash, LANES patterns at
 * a time in cache: the forward pass, then App. C's rules back from the second derivative at S2's output, summed
 * over the patterns. repro/kernels/c1s2.py calls it through ctypes; repro/sdlm.py's CurvatureEstimator uses it
 * in compiled runs, in place of oneDNN's convolutions and inductor's elementwise kernels around C1 and S2
 * (docs/speed.md, "What is left in the curvature estimate"). Plain C: every innermost loop runs over the
 * LANES patterns of a group, held pattern-innermost ([..][LANES]), so that the compiler turns it into whole
 * vectors (without -ffast-math: repro/kernels/__init__.py has the flags) with no remainders and no shuffles, and
 * a convolution's weight is one broadcast scalar.
 *
 * Layouts (float32, contiguous): x (n, 1, IN, IN), any padding of C1 already applied; weight (maps, 1, 5, 5);
 * y1, the squashed C1 output (n, maps, OUT, OUT); y2, the squashed S2 output (n, maps, HALF, HALF); d2y2,
 * d2E/dy2^2 at S2's output, as y2. act: 0 = A tanh(S a), 1 = ReLU. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define K 5
#define OUT 28  /* C1's maps are 28x28 whatever the input (repro/model.py pads a 28x28 input by 2) */
#define IN (OUT + K - 1)
#define HALF (OUT / 2)
#define COLUMNS 4  /* C1 units computed together along a row (OUT is a multiple) */
#ifndef LANES  /* patterns per group: one vector register (repro/kernels/__init__.py sets it per instruction set) */
#define LANES 16
#endif
/* A loop over a group's lanes, left rolled for the vectoriser (GCC would otherwise unroll its 16 iterations first
 * and vectorise the loop around it instead). */
/* A group's lanes as one value, which GCC keeps in a register */
typedef float lanes __attribute__((vector_size(4 * LANES), aligned(4)));
#define FOR_LANES(l) _Pragma("GCC unroll 1") for (int l = 0; l < LANES; l++)

/* e^x for x <= 0, Cephes' expf (range reduction by ln 2, degree-5 polynomial; within 2 ulp), written with
 * neither library calls nor float-to-int conversions (which GCC will not vectorise): x log2(e) is rounded to the
 * integer n by adding 1.5 * 2^23, whose low mantissa bits then hold n, and 2^n is built from its bits. */
typedef union { float value; int32_t bits; } word;
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    const word shifted = {.value = x * 1.44269504088896341f + 12582912.0f};
    const float n = shifted.value - 12582912.0f;
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    const float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    const word scale = {.bits = (shifted.bits - 0x4B400000 + 127) << 23};  /* 2^n */
    return p * scale.value;
}

/* dst = f(a) along a row: A tanh(S a) as (1 - e) / (1 + e), e = exp(-2 |S a|), sign restored (the form compiled
 * code uses, repro/components/activation.py), or max(a, 0). One loop per function, so that each vectorises. */
static void squash_row(float *dst, const float *a, int len, int act, float amp, float slope) {
    if (act == 1) {
        _Pragma("GCC unroll 1") for (int c = 0; c < len; c++) dst[c] = !(a[c] <= 0.0f) ? a[c] : 0.0f;  /* NaN stays */
        return;
    }
    _Pragma("GCC unroll 1") for (int c = 0; c < len; c++) {
        const float s = slope * a[c], e = exp_nonpositive(-2.0f * fabsf(s));
        dst[c] = copysignf(amp * ((1.0f - e) / (1.0f + e)), s);
    }
}

/* dst = f'(a)^2 from the output y = f(a) along a row: (A S (1 - (y/A)^2))^2, or 1 where y > 0 (autograd's
 * ReLU convention). */
static void slope_squared_row(float *dst, const float *y, int len, int act, float amp, float slope) {
    if (act == 1) {
        _Pragma("GCC unroll 1") for (int c = 0; c < len; c++) dst[c] = y[c] > 0.0f ? 1.0f : 0.0f;
        return;
    }
    _Pragma("GCC unroll 1") for (int c = 0; c < len; c++) {
        const float q = y[c] / amp, d = amp * slope * (1.0f - q * q);
        dst[c] = d * d;
    }
}


/* One group of LANES patterns from the n at `first`, transposed pattern-innermost; patterns past n are zeros
 * (they contribute nothing to h and their outputs are not written). */
static void gather_group(float (*dst)[LANES], const float *src, int64_t first, int64_t n, int per_pattern) {
    for (int k = 0; k < per_pattern; k++)
        FOR_LANES(l) dst[k][l] = 0.0f;
    for (int l = 0; l < LANES && first + l < n; l++)
        for (int k = 0; k < per_pattern; k++) dst[k][l] = src[(first + l) * per_pattern + k];
}

/* Patterns per group, as this library was built: the layout of c1s2_forward's y1. */
int c1s2_lanes(void) { return LANES; }

/* The forward pass of a group: y1 = f(C1(x)) ([maps][OUT][OUT][LANES]), y2 = f(coefficient * (2x2 block sums of
 * y1) + s2_bias), written to the n-pattern tensor y2 (n, maps, HALF, HALF). */
static void forward_group(const float (*x)[LANES], int64_t first, int64_t n, int maps, const float *weight,
                          const float *bias, const float *coefficient, const float *s2_bias, int act, float amp,
                          float slope, float (*y1)[LANES], float *y2) {
    float acc[LANES], z[LANES];
    for (int m = 0; m < maps; m++) {
        const float *w = weight + m * K * K;
        float (*ym)[LANES] = y1 + m * OUT * OUT;
        for (int r = 0; r < OUT; r++)
            for (int c = 0; c < OUT; c += COLUMNS) {
                /* COLUMNS neighbouring units at once: independent chains of multiply-adds */
                lanes sums[COLUMNS];
                for (int j = 0; j < COLUMNS; j++) sums[j] = (lanes){0} + bias[m];
                for (int u = 0; u < K; u++)
                    for (int v = 0; v < K; v++)
                        for (int j = 0; j < COLUMNS; j++)
                            sums[j] += w[u * K + v] * *(const lanes *)x[(r + u) * IN + c + j + v];
                for (int j = 0; j < COLUMNS; j++) {
                    *(lanes *)acc = sums[j];
                    squash_row(ym[r * OUT + c + j], acc, LANES, act, amp, slope);
                }
            }
        for (int i = 0; i < HALF; i++)
            for (int j = 0; j < HALF; j++) {
                const float *a = ym[2 * i * OUT + 2 * j], *b = ym[2 * i * OUT + 2 * j + 1];
                const float *d = ym[(2 * i + 1) * OUT + 2 * j], *e = ym[(2 * i + 1) * OUT + 2 * j + 1];
                FOR_LANES(l) acc[l] = coefficient[m] * ((a[l] + b[l]) + (d[l] + e[l])) + s2_bias[m];
                squash_row(z, acc, LANES, act, amp, slope);
                for (int l = 0; l < LANES && first + l < n; l++)
                    y2[(((first + l) * maps + m) * HALF + i) * HALF + j] = z[l];
            }
    }
}

/* The forward pass of n patterns: y1 = f(C1(x)) kept for c1s2_curvature as groups of LANES patterns,
 * (ceil(n / LANES), maps, OUT, OUT, LANES), or not kept when NULL (the evaluation needs y2 alone); y2 as
 * forward_group. */
int c1s2_forward(const float *x, int64_t n, int maps, const float *weight, const float *bias,
                 const float *coefficient, const float *s2_bias, int act, float amp, float slope,
                 float *y1, float *y2) {
    float (*xs)[LANES] = malloc(sizeof(float[IN * IN][LANES]));
    float (*scratch)[LANES] = y1 ? NULL : malloc(sizeof(float[LANES]) * maps * OUT * OUT);
    if (!xs || (!y1 && !scratch)) {
        free(xs);
        free(scratch);
        return -1;
    }
    for (int64_t first = 0; first < n; first += LANES) {
        gather_group(xs, x, first, n, IN * IN);
        float (*y1g)[LANES] = y1 ? (float (*)[LANES])(y1 + first * maps * OUT * OUT) : scratch;
        forward_group((const float (*)[LANES])xs, first, n, maps, weight, bias, coefficient, s2_bias, act, amp,
                      slope, y1g, y2);
    }
    free(xs);
    free(scratch);
    return 0;
}

/* App. C back from d2y2 = d2E/dy2^2 (n, maps, HALF, HALF), summed over the n patterns into (double) h:
 *   S2:  d2E/da2^2 = f'(a2)^2 d2y2;  h(coefficient) += sum of (the block's four y1^2) d2E/da2^2;
 *        h(s2_bias) += d2E/da2^2;  d2E/dy1^2 = coefficient^2 d2E/da2^2 at each of the block's four inputs
 *   C1:  d2E/da1^2 = f'(a1)^2 d2E/dy1^2;  h(weight[u][v]) += sum over positions of x^2 (shifted by u, v)
 *        d2E/da1^2;  h(bias) += d2E/da1^2
 * y1 as c1s2_forward kept it, y2 as it wrote it. h_weight is (maps, 25), the others (maps). Both functions return
 * 0, or -1 where they could not allocate their buffers (then they compute nothing). */
int c1s2_curvature(const float *x, int64_t n, int maps, const float *coefficient, const float *y1,
                   const float *y2, const float *d2y2, int act, float amp, float slope, double *h_weight,
                   double *h_bias, double *h_coefficient, double *h_s2_bias) {
    float (*x2)[LANES] = malloc(sizeof(float[IN * IN][LANES])), (*z)[LANES] = malloc(sizeof(float[HALF * HALF][LANES]));
    float (*g)[LANES] = malloc(sizeof(float[HALF * HALF][LANES])), (*d2a1)[LANES] = malloc(sizeof(float[OUT * OUT][LANES]));
    float by_coefficient[LANES], by_s2_bias[LANES], by_bias[LANES], slope2[LANES];
    const int status = x2 && z && g && d2a1 ? 0 : -1;  /* -1: out of memory, nothing computed */
    for (int64_t first = 0; status == 0 && first < n; first += LANES) {
        gather_group(x2, x, first, n, IN * IN);
        for (int k = 0; k < IN * IN; k++)
            FOR_LANES(l) x2[k][l] *= x2[k][l];
        for (int m = 0; m < maps; m++) {
            const float (*ym)[LANES] = (const float (*)[LANES])(y1 + (first * maps + m * LANES) * OUT * OUT);
            const float c2 = coefficient[m] * coefficient[m];
            for (int k = 0; k < HALF * HALF; k++)
                FOR_LANES(l) z[k][l] = g[k][l] = 0.0f;
            for (int l = 0; l < LANES && first + l < n; l++)
                for (int k = 0; k < HALF * HALF; k++) {
                    z[k][l] = y2[((first + l) * maps + m) * HALF * HALF + k];
                    g[k][l] = d2y2[((first + l) * maps + m) * HALF * HALF + k];
                }
            FOR_LANES(l) by_coefficient[l] = by_s2_bias[l] = by_bias[l] = 0.0f;
            for (int k = 0; k < HALF * HALF; k++) {
                slope_squared_row(slope2, z[k], LANES, act, amp, slope);
                FOR_LANES(l) {
                    g[k][l] *= slope2[l];
                    by_s2_bias[l] += g[k][l];
                }
            }
            for (int r = 0; r < OUT; r++)
                for (int c = 0; c < OUT; c++) {
                    const float *yl = ym[r * OUT + c], *gl = g[(r / 2) * HALF + c / 2];
                    slope_squared_row(slope2, yl, LANES, act, amp, slope);
                    FOR_LANES(l) {
                        by_coefficient[l] += yl[l] * yl[l] * gl[l];
                        d2a1[r * OUT + c][l] = c2 * gl[l] * slope2[l];
                        by_bias[l] += d2a1[r * OUT + c][l];
                    }
                }
            FOR_LANES(l) {
                h_coefficient[m] += by_coefficient[l];
                h_s2_bias[m] += by_s2_bias[l];
                h_bias[m] += by_bias[l];
            }
            /* 25 independent sums (one per weight), each position's d2E/da1^2 loaded once: one chain of
             * multiply-adds would wait on its own latency */
            lanes sums[K * K];
            for (int k = 0; k < K * K; k++) sums[k] = (lanes){0};
            for (int r = 0; r < OUT; r++)
                for (int c = 0; c < OUT; c++) {
                    const lanes d = *(const lanes *)d2a1[r * OUT + c];
                    for (int u = 0; u < K; u++)
                        for (int v = 0; v < K; v++) sums[u * K + v] += *(const lanes *)x2[(r + u) * IN + c + v] * d;
                }
            for (int k = 0; k < K * K; k++) {
                double total = 0.0;
                FOR_LANES(l) total += sums[k][l];
                h_weight[m * K * K + k] += total;
            }
        }
    }
    free(x2);
    free(z);
    free(g);
    free(d2a1);
    return status;
}
