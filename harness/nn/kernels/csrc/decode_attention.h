/* The C decode-attention kernel's entry points (decode_attention.c), included by the kernel itself and by
 * the torch.library operator that calls it (decode_attention_op.cpp), so the compiler checks both sides
 * against one prototype. Arguments: see DEFINE_ENTRY in decode_attention.c. Returns 0, or 1 where the
 * geometry is outside what the kernel handles (the operator checks it first). */
#ifndef ALITOK_BENCH_DECODE_ATTENTION_H
#define ALITOK_BENCH_DECODE_ATTENTION_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int decode_attention_f32(const float *q, const float *k, const float *v, long sb, long sh, const float *q_w,
                         const float *k_w, float eps, const float *rope, float *k_cache, float *v_cache, float *out,
                         long B, long H, long T, long D, long pos, float scale, int nthreads);
int decode_attention_bf16(const uint16_t *q, const uint16_t *k, const uint16_t *v, long sb, long sh,
                          const uint16_t *q_w, const uint16_t *k_w, float eps, const float *rope, uint16_t *k_cache,
                          uint16_t *v_cache, uint16_t *out, long B, long H, long T, long D, long pos, float scale,
                          int nthreads);

#define DECODE_ATTENTION_MAX_D 1024

#ifdef __cplusplus
}
#endif
#endif
