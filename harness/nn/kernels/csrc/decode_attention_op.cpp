// The C decode-attention kernel (decode_attention.c) as a torch.library operator:
//
//   alitok_bench::decode_attention(Tensor q, Tensor k, Tensor v, Tensor(a!) k_cache, Tensor(b!) v_cache,
//       int pos, Tensor? q_norm, Tensor? k_norm, float eps, Tensor? rope) -> Tensor
//
// writes the new key and value ([B, H, 1, D], after the optional QK-norm and RoPE) at slot `pos` of the
// contiguous caches [B, H, T, D] and returns the attention of q over slots 0..pos, [B, H, 1, D].
// Every argument is checked here (device, dtype, rank, sizes, contiguity, position) and a mismatch is a
// RuntimeError naming it, never a read past a buffer. Strided q, k, v views of one qkv Linear output
// are read in place when they share their (batch, head) strides; other layouts are copied first.
// OP_NAMESPACE (default alitok_bench) lets a test load builds for other instruction sets beside it.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <optional>

#include "decode_attention.h"

#ifndef OP_NAMESPACE
#define OP_NAMESPACE alitok_bench
#endif

namespace {

void check_weight(const std::optional<at::Tensor> &w, const char *name, const at::Tensor &cache, int64_t d) {
  if (!w.has_value()) return;
  TORCH_CHECK(w->device().is_cpu(), "decode_attention: ", name, " must be on the CPU");
  TORCH_CHECK(w->scalar_type() == cache.scalar_type(), "decode_attention: ", name, " is ", w->scalar_type(),
              ", the cache ", cache.scalar_type());
  TORCH_CHECK(w->dim() == 1 && w->size(0) == d, "decode_attention: ", name, " must be [", d, "], got ",
              w->sizes());
}

at::Tensor decode_attention(const at::Tensor &q_in, const at::Tensor &k_in, const at::Tensor &v_in,
                            at::Tensor &k_cache, at::Tensor &v_cache, int64_t pos,
                            const std::optional<at::Tensor> &q_norm, const std::optional<at::Tensor> &k_norm,
                            double eps, const std::optional<at::Tensor> &rope_in) {
  TORCH_CHECK(k_cache.dim() == 4, "decode_attention: k_cache must be [B, H, T, D], got ", k_cache.sizes());
  const int64_t B = k_cache.size(0), H = k_cache.size(1), T = k_cache.size(2), D = k_cache.size(3);
  const auto dtype = k_cache.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "decode_attention: the cache must be float32 or ",
              "bfloat16, got ", dtype);
  TORCH_CHECK(v_cache.sizes() == k_cache.sizes() && v_cache.scalar_type() == dtype,
              "decode_attention: v_cache ", v_cache.sizes(), " ", v_cache.scalar_type(), " differs from k_cache ",
              k_cache.sizes(), " ", dtype);
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "decode_attention: the KV cache must be contiguous");
  TORCH_CHECK(D >= 2 && D <= DECODE_ATTENTION_MAX_D && D % 2 == 0, "decode_attention: head size ", D,
              " must be even and in [2, ", DECODE_ATTENTION_MAX_D, "]");
  TORCH_CHECK(pos >= 0 && pos < T, "decode_attention: position ", pos, " outside the KV cache of ", T, " slots");
  const at::Tensor *news[3] = {&q_in, &k_in, &v_in};
  const char *names[3] = {"q", "k", "v"};
  for (int i = 0; i < 3; i++) {
    const at::Tensor &x = *news[i];
    TORCH_CHECK(x.device().is_cpu() && k_cache.device().is_cpu() && v_cache.device().is_cpu(),
                "decode_attention: every tensor must be on the CPU");
    TORCH_CHECK(x.scalar_type() == dtype, "decode_attention: ", names[i], " is ", x.scalar_type(), ", the cache ",
                dtype);
    TORCH_CHECK(x.dim() == 4 && x.size(0) == B && x.size(1) == H && x.size(2) == 1 && x.size(3) == D,
                "decode_attention: ", names[i], " ", x.sizes(), " does not fit the KV cache ", k_cache.sizes(),
                " (one query: [B, H, 1, D])");
  }
  check_weight(q_norm, "q_norm", k_cache, D);
  check_weight(k_norm, "k_norm", k_cache, D);
  TORCH_CHECK(q_norm.has_value() == k_norm.has_value(), "decode_attention: QK-norm needs both the q and the k weight");
  at::Tensor rope;
  if (rope_in.has_value()) {
    TORCH_CHECK(rope_in->device().is_cpu() && rope_in->scalar_type() == at::kFloat,
                "decode_attention: rope must be a float32 CPU tensor, got ", rope_in->scalar_type());
    TORCH_CHECK(rope_in->numel() == D, "decode_attention: rope ", rope_in->sizes(), " does not fit head size ", D,
                " (one position: [D/2, 2] cos/sin)");
    rope = rope_in->contiguous();
  }
  // the kernel reads row (b, h) of q, k, v at b * sb + h * sh, unit stride along D: one shared layout
  at::Tensor q = q_in, k = k_in, v = v_in;
  auto layout = [&](const at::Tensor &x) { return std::make_tuple(x.stride(0), x.stride(1), x.stride(3)); };
  if (q.stride(3) != 1 || layout(k) != layout(q) || layout(v) != layout(q)) {
    q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  }
  const int64_t sb = B > 1 ? q.stride(0) : H * D, sh = H > 1 ? q.stride(1) : D;
  const at::Tensor qw = q_norm.has_value() ? q_norm->contiguous() : at::Tensor();
  const at::Tensor kw = k_norm.has_value() ? k_norm->contiguous() : at::Tensor();
  const float *rope_ptr = rope.defined() ? rope.data_ptr<float>() : nullptr;
  at::Tensor out = at::empty({B, H, 1, D}, k_cache.options());
  const float scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5));  // D ** -0.5, rounded once
  const int threads = at::get_num_threads();
  int rc;
  if (dtype == at::kFloat) {
    rc = decode_attention_f32(q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), sb, sh,
                              qw.defined() ? qw.data_ptr<float>() : nullptr,
                              kw.defined() ? kw.data_ptr<float>() : nullptr, static_cast<float>(eps), rope_ptr,
                              k_cache.data_ptr<float>(), v_cache.data_ptr<float>(), out.data_ptr<float>(), B, H, T,
                              D, pos, scale, threads);
  } else {
    auto p = [](const at::Tensor &x) { return x.defined() ? static_cast<const uint16_t *>(x.data_ptr()) : nullptr; };
    rc = decode_attention_bf16(p(q), p(k), p(v), sb, sh, p(qw), p(kw), static_cast<float>(eps), rope_ptr,
                               static_cast<uint16_t *>(k_cache.data_ptr()), static_cast<uint16_t *>(v_cache.data_ptr()),
                               static_cast<uint16_t *>(out.data_ptr()), B, H, T, D, pos, scale, threads);
  }
  TORCH_CHECK(rc == 0, "decode_attention: the kernel refused B=", B, " H=", H, " T=", T, " D=", D, " pos=", pos);
  return out;
}

}  // namespace

TORCH_LIBRARY(OP_NAMESPACE, m) {
  m.def(
      "decode_attention(Tensor q, Tensor k, Tensor v, Tensor(a!) k_cache, Tensor(b!) v_cache, int pos, "
      "Tensor? q_norm, Tensor? k_norm, float eps, Tensor? rope) -> Tensor");
}

TORCH_LIBRARY_IMPL(OP_NAMESPACE, CPU, m) { m.impl("decode_attention", &decode_attention); }
