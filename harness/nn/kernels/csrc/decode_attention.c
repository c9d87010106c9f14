/* One-query (decode-step) attention over a static KV cache, for CPU inference.
 *
 * For every (batch, head) row: optionally QK-norm (RMSNorm) and rotate (RoPE) the new query and
 * key, write the new key and value at slot `pos`, then attend the query
 * over slots 0..pos (the causal row) in one streaming pass with an online softmax over blocks of
 * 16 slots and fp32 accumulation: s_t = scale * q.k_t, p = softmax(s), out = sum_t p_t v_t.
 *
 * Layouts: out [B, H, D] and k_cache, v_cache [B, H, T, D], contiguous; the new q, k, v by strides
 * (DEFINE_ENTRY), so the qkv Linear's output is read in place.
 * Why not SDPA: at one query per row PyTorch's CPU flash kernel reads a cold cache at ~10-24 GB/s
 * on the 2-core test machine. What mattered here (results/speed/ar_optimisation.md): the head
 * size known at compile time (specialised below), keys and values read in the same pass, and
 * software prefetch 32 slots ahead that runs on into the next row's first slots, because each
 * row's slots are a short stream the hardware prefetcher has to find again; then, for head sizes
 * divisible by 16, the vector path below (the scalar loop was compute-bound, not memory-bound).
 * Built at first use (harness/nn/kernels/native_build.py, cached by source digest) with the torch.library
 * operator of decode_attention_op.cpp, which checks every argument before calling in here; threads come
 * from the caller (OpenMP, the same libgomp PyTorch loaded).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "decode_attention.h"

#define BLOCK 16
#define PREFETCH 32
#define MAX_D DECODE_ATTENTION_MAX_D

static inline float bf16_to_f32(uint16_t x) {
  union { uint32_t u; float f; } c;
  c.u = (uint32_t)x << 16;
  return c.f;
}

static inline uint16_t f32_to_bf16(float x) { /* round to nearest even, as torch does */
  union { uint32_t u; float f; } c;
  c.f = x;
  if (isnan(x)) return 0x7fc0;
  return (uint16_t)((c.u + 0x7fffu + ((c.u >> 16) & 1u)) >> 16);
}

#define LOAD_f32(x) (x)
#define LOAD_bf16(x) bf16_to_f32(x)
#define STORE_f32(x) (x)
#define STORE_bf16(x) f32_to_bf16(x)

/* Head sizes that are multiples of 16 (every model here) take a vector path written with GCC/Clang
 * vector extensions, so it compiles to AVX-512, AVX2 or NEON alike. Per block of 16 keys: 16 dot
 * products of D/16 vectors each, their 16 horizontal sums in one transpose-and-add tree (15
 * two-input shuffles), one vector exp for the 16 weights, then 16 broadcast FMAs into the output.
 * The scalar loop it replaced spent ~9 ns a key (hot cache) on horizontal sums and scalar expf, so it
 * read a cold cache at ~28 GB/s where a plain sum reads 40-50 (results/speed/ar_optimisation.md). */
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef float v16f_u __attribute__((vector_size(64), aligned(4)));   /* unaligned loads */
typedef uint16_t v16h_u __attribute__((vector_size(32), aligned(2)));
typedef uint32_t v16u __attribute__((vector_size(64)));

static inline v16f loadv_float(const float *p) { return *(const v16f_u *)p; }
static inline v16f loadv_bf16(const uint16_t *p) {
  return (v16f)(__builtin_convertvector(*(const v16h_u *)p, v16u) << 16);
}

#if defined(__clang__)
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF(a, b, ...) __builtin_shuffle(a, b, (v16i){__VA_ARGS__})
#endif

/* lane i of the result = the sum of the 16 lanes of x[i] */
static inline v16f hsum16(const v16f x[16]) {
  v16f a[8], b[4], c[2];
  for (int i = 0; i < 8; i++)
    a[i] = SHUF(x[2 * i], x[2 * i + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
         + SHUF(x[2 * i], x[2 * i + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (int i = 0; i < 4; i++)
    b[i] = SHUF(a[2 * i], a[2 * i + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27)
         + SHUF(a[2 * i], a[2 * i + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  for (int i = 0; i < 2; i++)
    c[i] = SHUF(b[2 * i], b[2 * i + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29)
         + SHUF(b[2 * i], b[2 * i + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  return SHUF(c[0], c[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
       + SHUF(c[0], c[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

static inline v16f vmax(v16f a, v16f b) {
  const v16i gt = a > b;
  return (v16f)(((v16i)a & gt) | ((v16i)b & ~gt));
}

/* every lane = the max (the sum) of x's 16 lanes, in four shuffle steps instead of a 15-step chain */
static inline v16f hmax_all(v16f x) {
  x = vmax(x, SHUF(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  x = vmax(x, SHUF(x, x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
  x = vmax(x, SHUF(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
  return vmax(x, SHUF(x, x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14));
}

static inline float hadd(v16f x) {
  x = x + SHUF(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  x = x + SHUF(x, x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  x = x + SHUF(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  return x[0] + x[1];
}

/* exp(x) for x <= 0 (scores minus their running max), within ~2 ulp: x = n ln2 + r, |r| <= ln2/2,
 * e^r by the Cephes expf polynomial, 2^n by building the exponent; below -87 the result is held at
 * ~1.6e-38, which no softmax sum can notice. */
static inline v16f vexp_nonpos(v16f x) {
  const v16f lo = (v16f){0} - 87.f;
  const v16i under = x < lo;
  x = (v16f)(((v16i)x & ~under) | ((v16i)lo & under));
  const v16f t = x * 1.44269504088896341f + 12582912.f; /* 1.5 * 2^23: rounds n into the low bits */
  const v16f n = t - 12582912.f;
  v16f r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v16f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const v16f y = p * r * r + r + 1.f;
  const v16i e = ((v16i)t - 0x4B400000 + 127) << 23; /* t's bits are 0x4B400000 + n */
  return y * (v16f)e;
}

/* Prefetch the block PREFETCH slots ahead; past the end of this row, the next row's first slots. */
#define PREFETCH_AHEAD(T_)                                                                        \
  {                                                                                                \
    long ahead = t0 + PREFETCH;                                                                    \
    const T_ *pk = kk, *pv = vv;                                                                   \
    if (ahead >= n) {                                                                              \
      ahead -= n; pk += T * D; pv += T * D;                                                        \
      if (!has_next || ahead >= n) ahead = -1;                                                     \
    }                                                                                              \
    if (ahead >= 0) {                                                                              \
      const long len = (n - ahead < BLOCK ? n - ahead : BLOCK) * D;                                \
      for (long i = 0; i < len; i += 64 / (long)sizeof(T_)) {                                      \
        __builtin_prefetch(pk + ahead * D + i);                                                    \
        __builtin_prefetch(pv + ahead * D + i);                                                    \
      }                                                                                            \
    }                                                                                              \
  }

/* ROW_<T>: one (batch, head) row; D is a compile-time constant at every call site below. */
#define DEFINE_ROW(T_, LOAD, STORE)                                                               \
  static inline __attribute__((always_inline)) void prologue_##T_(                                \
      const T_ *x, const T_ *w, float eps, const float *rope, T_ *dst, const long D) {            \
    /* dst = rope(rms_norm(x) * w), rounding to T_ where the PyTorch modules round */              \
    float y[MAX_D];                                                                                \
    for (long d = 0; d < D; d++) y[d] = LOAD(x[d]);                                                \
    if (w) {                                                                                       \
      float ss = 0.f;                                                                              \
      for (long d = 0; d < D; d++) ss += y[d] * y[d];                                              \
      const float r = 1.f / sqrtf(ss / (float)D + eps);                                            \
      for (long d = 0; d < D; d++) y[d] = LOAD(STORE(LOAD(STORE(y[d] * r)) * LOAD(w[d])));         \
    }                                                                                              \
    if (rope) {                                                                                    \
      for (long d = 0; d < D; d += 2) {                                                            \
        const float c = rope[d], sn = rope[d + 1], a = y[d], b = y[d + 1];                         \
        y[d] = a * c - b * sn; y[d + 1] = b * c + a * sn;                                          \
      }                                                                                            \
    }                                                                                              \
    for (long d = 0; d < D; d++) dst[d] = STORE(y[d]);                                             \
  }                                                                                                \
  static inline __attribute__((always_inline)) void attend_vec_##T_(                              \
      const float *qf, const T_ *kk, const T_ *vv, T_ *out, long T, const long D, long n,          \
      int has_next) {                                                                              \
    /* the vector path (D % 16 == 0): see hsum16 */                                                \
    v16f qv[MAX_D / 16], av[MAX_D / 16];                                                           \
    const v16i lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};                      \
    for (long j = 0; j < D / 16; j++) { qv[j] = loadv_float(qf + 16 * j); av[j] = (v16f){0}; }    \
    float m = -FLT_MAX, sum = 0.f;                                                                 \
    for (long t0 = 0; t0 < n; t0 += BLOCK) {                                                       \
      const long nb = n - t0 < BLOCK ? n - t0 : BLOCK;                                             \
      PREFETCH_AHEAD(T_)                                                                           \
      v16f sc[16];                                                                                 \
      for (long i = 0; i < 16; i++) {                                                              \
        sc[i] = (v16f){0};                                                                         \
        if (i < nb) {                                                                              \
          const T_ *kt = kk + (t0 + i) * D;                                                        \
          for (long j = 0; j < D / 16; j++) sc[i] += qv[j] * loadv_##T_(kt + 16 * j);              \
        }                                                                                          \
      }                                                                                            \
      const v16i valid = lane < (int)nb;                                                           \
      const v16f s = (v16f)(((v16i)hsum16(sc) & valid) | ((v16i)((v16f){0} - FLT_MAX) & ~valid)); \
      const float bm = hmax_all(s)[0];                                                             \
      if (bm > m) { /* a new running max: rescale what is summed so far */                         \
        const float c = expf(m - bm);                                                              \
        sum *= c;                                                                                  \
        for (long j = 0; j < D / 16; j++) av[j] *= c;                                              \
        m = bm;                                                                                    \
      }                                                                                            \
      const v16f p = (v16f)((v16i)vexp_nonpos(s - m) & valid);                                     \
      sum += hadd(p);                                                                              \
      for (long i = 0; i < nb; i++) {                                                              \
        const T_ *vt = vv + (t0 + i) * D;                                                          \
        for (long j = 0; j < D / 16; j++) av[j] += p[i] * loadv_##T_(vt + 16 * j);                 \
      }                                                                                            \
    }                                                                                              \
    const float inv = 1.f / sum;                                                                   \
    for (long j = 0; j < D / 16; j++)                                                              \
      for (int d = 0; d < 16; d++) out[16 * j + d] = STORE(av[j][d] * inv);                        \
  }                                                                                                \
  static inline __attribute__((always_inline)) void row_##T_(                                     \
      const T_ *q, const T_ *k_new, const T_ *v_new, const T_ *qw, const T_ *kw, float eps,        \
      const float *rope, T_ *kk, T_ *vv, T_ *out, long T, const long D, long pos, float scale,     \
      int has_next) {                                                                              \
    const long n = pos + 1;                                                                        \
    float qf[MAX_D], acc[MAX_D], s[BLOCK];                                                         \
    T_ qr[MAX_D];                                                                                  \
    if (qw || rope) {                                                                              \
      prologue_##T_(q, qw, eps, rope, qr, D);                                                      \
      prologue_##T_(k_new, kw, eps, rope, kk + pos * D, D);                                        \
      q = qr;                                                                                      \
    } else {                                                                                       \
      memcpy(kk + pos * D, k_new, sizeof(T_) * (size_t)D);                                         \
    }                                                                                              \
    memcpy(vv + pos * D, v_new, sizeof(T_) * (size_t)D);                                           \
    for (long d = 0; d < D; d++) { qf[d] = LOAD(q[d]) * scale; acc[d] = 0.f; }                     \
    if (D % 16 == 0) {                                                                             \
      attend_vec_##T_(qf, kk, vv, out, T, D, n, has_next);                                         \
      return;                                                                                      \
    }                                                                                              \
    float m = -FLT_MAX, sum = 0.f;                                                                 \
    for (long t0 = 0; t0 < n; t0 += BLOCK) {                                                       \
      const long nb = n - t0 < BLOCK ? n - t0 : BLOCK;                                             \
      PREFETCH_AHEAD(T_)                                                                           \
      float bm = -FLT_MAX;                                                                         \
      long i = 0;                                                                                  \
      for (; i + 4 <= nb; i += 4) { /* four keys at a time: independent sums */                    \
        const T_ *k0 = kk + (t0 + i) * D, *k1 = k0 + D, *k2 = k1 + D, *k3 = k2 + D;                 \
        float d0 = 0.f, d1 = 0.f, d2 = 0.f, d3 = 0.f;                                              \
        _Pragma("omp simd reduction(+:d0,d1,d2,d3)")                                               \
        for (long d = 0; d < D; d++) {                                                             \
          const float x = qf[d];                                                                   \
          d0 += x * LOAD(k0[d]); d1 += x * LOAD(k1[d]);                                            \
          d2 += x * LOAD(k2[d]); d3 += x * LOAD(k3[d]);                                            \
        }                                                                                          \
        s[i] = d0; s[i + 1] = d1; s[i + 2] = d2; s[i + 3] = d3;                                    \
      }                                                                                            \
      for (; i < nb; i++) {                                                                        \
        const T_ *kt = kk + (t0 + i) * D;                                                          \
        float dot = 0.f;                                                                           \
        _Pragma("omp simd reduction(+:dot)")                                                       \
        for (long d = 0; d < D; d++) dot += qf[d] * LOAD(kt[d]);                                   \
        s[i] = dot;                                                                                \
      }                                                                                            \
      for (i = 0; i < nb; i++) bm = s[i] > bm ? s[i] : bm;                                         \
      if (bm > m) { /* a new running max: rescale what is summed so far */                         \
        const float c = expf(m - bm);                                                              \
        sum *= c;                                                                                  \
        _Pragma("omp simd")                                                                        \
        for (long d = 0; d < D; d++) acc[d] *= c;                                                  \
        m = bm;                                                                                    \
      }                                                                                            \
      for (i = 0; i < nb; i++) { s[i] = expf(s[i] - m); sum += s[i]; }                             \
      for (i = 0; i < nb; i++) {                                                                   \
        const T_ *vt = vv + (t0 + i) * D;                                                          \
        const float p = s[i];                                                                      \
        _Pragma("omp simd")                                                                        \
        for (long d = 0; d < D; d++) acc[d] += p * LOAD(vt[d]);                                    \
      }                                                                                            \
    }                                                                                              \
    const float inv = 1.f / sum;                                                                   \
    for (long d = 0; d < D; d++) out[d] = STORE(acc[d] * inv);                                     \
  }

typedef uint16_t bf16;
DEFINE_ROW(float, LOAD_f32, STORE_f32)
DEFINE_ROW(bf16, LOAD_bf16, STORE_bf16)

/* Head sizes of the models here (AliTok-B 48, -L 64, -XL 80; LlamaGen and RAR 64) get their own
 * unrolled code; any other size up to MAX_D takes the generic loop. */
#define ROW(T_, DV)                                                                               \
  row_##T_(q + src, k + src, v + src, q_w, k_w, eps, rope, k_cache + bh * T * DV,                  \
           v_cache + bh * T * DV, out + bh * DV, T, DV, pos, scale, bh + 1 < B * H)
#define CASE(T_, DV) case DV: ROW(T_, DV); break;

/* q, k, v: the new query, key and value of row (b, h) start at b * sb + h * sh (separate
 * [B, H, D] tensors: sb = H * D, sh = D; one packed qkv Linear output [B, 3, H, D]: sb = 3 * H * D,
 * sh = D with k = q + H * D, v = q + 2 * H * D). q_w / k_w (RMSNorm weights, QK-norm) and rope
 * ([D/2, 2] cos/sin of this position, fp32) are optional (NULL): applied to q and k first. */
#define DEFINE_ENTRY(NAME, T_)                                                                    \
  int NAME(const T_ *q, const T_ *k, const T_ *v, long sb, long sh, const T_ *q_w, const T_ *k_w,  \
           float eps, const float *rope, T_ *k_cache, T_ *v_cache, T_ *out, long B, long H, long T, \
           long D, long pos, float scale, int nthreads) {                                          \
    if (pos < 0 || pos >= T || D < 2 || D > MAX_D || D % 2) return 1;                              \
    _Pragma("omp parallel for num_threads(nthreads) schedule(static)")                             \
    for (long bh = 0; bh < B * H; bh++) {                                                          \
      const long src = (bh / H) * sb + (bh % H) * sh;                                              \
      switch (D) {                                                                                 \
        CASE(T_, 48) CASE(T_, 64) CASE(T_, 80) CASE(T_, 96) CASE(T_, 128)                          \
        default: ROW(T_, D);                                                                       \
      }                                                                                            \
    }                                                                                              \
    return 0;                                                                                      \
  }

DEFINE_ENTRY(decode_attention_f32, float)
DEFINE_ENTRY(decode_attention_bf16, bf16)
