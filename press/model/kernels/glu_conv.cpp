// PRESS-Net's long-convolution mixer between its two projections, in frames-by-channels layout.
//
// From the in-projection q = [a | b] (N, T, 2E), the frame mask m (N, T, 1), a depthwise kernel
// w (E, 1, K) with K odd and a bias (E):
//   u = a sigmoid(b) m                       (GLU, zero in padding)
//   s_t = bias + sum_k w_k u_{t + k - K/2}    (depthwise, zero outside [0, T))
//   z = s sigmoid(s)                          (SiLU)
// Eager PyTorch transposes u to (N, E, T) for oneDNN's depthwise convolution, which runs it far
// below the machine's speed at these shapes, and back; here the convolution is vectorised across
// channels straight in (N, T, E), four frames at a time so that each weight load serves four.
// Backward: ds = dz silu'(s); du_t = sum_k w_k ds_{t - k + K/2}; dw_k = sum_t ds_t u_{t + k - K/2};
// dbias = sum_t ds_t; da = du m sigmoid(b), db = du m a sigmoid'(b).
// Mirrors press.model.blocks.LongConv; tests/test_kernels.py holds it to that code.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "vec_math.h"

#include <algorithm>
#include <tuple>
#include <vector>

namespace {

using at::vec::Vectorized;

using press_kernels::sigmoid;

void check(const at::Tensor& q, const at::Tensor& mask, const at::Tensor& weight) {
  TORCH_CHECK(q.device().is_cpu() && q.dim() == 3 && q.size(2) % 2 == 0 && q.is_contiguous(),
              "glu_conv: q must be a contiguous (N, T, 2E) CPU tensor");
  const int64_t E = q.size(2) / 2;
  TORCH_CHECK(mask.is_contiguous() && mask.scalar_type() == q.scalar_type() && mask.dim() == 3 &&
              mask.size(0) == q.size(0) && mask.size(1) == q.size(1) && mask.size(2) == 1,
              "glu_conv: mask must be (N, T, 1) of q's dtype");
  TORCH_CHECK(weight.dim() == 3 && weight.size(0) == E && weight.size(1) == 1 && weight.size(2) % 2 == 1 &&
              weight.scalar_type() == q.scalar_type(), "glu_conv: weight must be (E, 1, K), K odd, of q's dtype");
}

// u = a sigmoid(b) m into rows [K/2, K/2 + T) of a zero-padded (N, T + K - 1, E) buffer.
template <typename scalar_t>
void glu_into(const scalar_t* q, const scalar_t* m, scalar_t* up, int64_t N, int64_t T, int64_t E, int64_t K) {
  using Vec = Vectorized<scalar_t>;
  const int64_t pad = K / 2, Tp = T + K - 1;
  at::parallel_for(0, N * T, 256, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / T, t = row % T;
      const scalar_t* qr = q + row * 2 * E;
      scalar_t* ur = up + (n * Tp + t + pad) * E;
      const Vec mv(m[row]);
      for (int64_t c = 0; c < E; c += Vec::size()) {
        const int64_t w = std::min<int64_t>(Vec::size(), E - c);
        (Vec::loadu(qr + c, w) * sigmoid(Vec::loadu(qr + E + c, w)) * mv).store(ur + c, w);
      }
    }
  });
}

// out_t = bias + sum_k wt[k] x_{t + k} over a padded input x (N, T + K - 1, E); wt (K, E).
template <typename scalar_t, typename Epilogue>
void depthwise(const scalar_t* xp, const scalar_t* wt, const scalar_t* bias, int64_t N, int64_t T, int64_t E,
               int64_t K, Epilogue epilogue) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t R = 4;                                  // frames per weight load
  const int64_t Tp = T + K - 1, blocks = (T + R - 1) / R;
  at::parallel_for(0, N * blocks, 16, [&](int64_t begin, int64_t end) {
    for (int64_t job = begin; job < end; ++job) {
      const int64_t n = job / blocks, t0 = (job % blocks) * R, rows = std::min(R, T - t0);
      const scalar_t* x = xp + (n * Tp + t0) * E;
      for (int64_t c = 0; c < E; c += Vec::size()) {
        const int64_t w = std::min<int64_t>(Vec::size(), E - c);
        Vec acc[R];
        for (int64_t r = 0; r < R; ++r) acc[r] = bias ? Vec::loadu(bias + c, w) : Vec(0);
        for (int64_t k = 0; k < K; ++k) {
          const Vec wk = Vec::loadu(wt + k * E + c, w);
          for (int64_t r = 0; r < R; ++r) acc[r] = at::vec::fmadd(wk, Vec::loadu(x + (k + r) * E + c, w), acc[r]);
        }
        for (int64_t r = 0; r < rows; ++r) epilogue(n * T + t0 + r, c, w, acc[r]);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> glu_conv_forward(const at::Tensor& q, const at::Tensor& mask, const at::Tensor& weight,
                                                    const at::Tensor& bias, bool keep_state) {
  check(q, mask, weight);
  const int64_t N = q.size(0), T = q.size(1), E = q.size(2) / 2, K = weight.size(2);
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == E && bias.scalar_type() == q.scalar_type(),
              "glu_conv: bias must be (E,) of q's dtype");
  at::Tensor up = at::zeros({N, T + K - 1, E}, q.options());
  at::Tensor wt = weight.reshape({E, K}).t().contiguous();                       // (K, E)
  at::Tensor b = bias.contiguous();
  at::Tensor z = at::empty({N, T, E}, q.options());
  at::Tensor s = keep_state ? at::empty({N, T, E}, q.options()) : at::empty({0}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "glu_conv_forward", [&] {
    using Vec = Vectorized<scalar_t>;
    glu_into<scalar_t>(q.const_data_ptr<scalar_t>(), mask.const_data_ptr<scalar_t>(), up.mutable_data_ptr<scalar_t>(),
                       N, T, E, K);
    scalar_t* zp = z.mutable_data_ptr<scalar_t>();
    scalar_t* sp = keep_state ? s.mutable_data_ptr<scalar_t>() : nullptr;
    depthwise<scalar_t>(up.const_data_ptr<scalar_t>(), wt.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
                        N, T, E, K, [&](int64_t row, int64_t c, int64_t w, const Vec& acc) {
                          (acc * sigmoid(acc)).store(zp + row * E + c, w);
                          if (sp) acc.store(sp + row * E + c, w);
                        });
  });
  return {z, s};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> glu_conv_backward(const at::Tensor& q, const at::Tensor& mask,
                                                                 const at::Tensor& weight, const at::Tensor& s,
                                                                 const at::Tensor& dz) {
  check(q, mask, weight);
  const int64_t N = q.size(0), T = q.size(1), E = q.size(2) / 2, K = weight.size(2), pad = K / 2, Tp = T + K - 1;
  TORCH_CHECK(s.is_contiguous() && dz.is_contiguous() && s.sizes() == dz.sizes() && s.size(0) == N &&
              s.size(1) == T && s.size(2) == E, "glu_conv: s and dz must be contiguous (N, T, E)");
  at::Tensor up = at::zeros({N, Tp, E}, q.options());
  at::Tensor dsp = at::zeros({N, Tp, E}, q.options());                         // ds, zero-padded the same way
  at::Tensor wflip = weight.reshape({E, K}).flip({1}).t().contiguous();        // (K, E), k -> K-1-k
  at::Tensor du = at::empty({N, T, E}, q.options());
  at::Tensor dq = at::empty_like(q);
  // frames are cut into chunks by their number alone, never by the thread count, so that the weight
  // gradient's sum runs in the same order on any machine (a run resumed elsewhere stays bit-identical)
  const int64_t chunks = std::clamp<int64_t>(N * T / 512, 1, 256);
  at::Tensor dw_parts = at::zeros({chunks, K, E}, q.options());
  at::Tensor db_parts = at::zeros({chunks, E}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "glu_conv_backward", [&] {
    using Vec = Vectorized<scalar_t>;
    const scalar_t *qp = q.const_data_ptr<scalar_t>(), *mp = mask.const_data_ptr<scalar_t>();
    const scalar_t *spp = s.const_data_ptr<scalar_t>(), *dzp = dz.const_data_ptr<scalar_t>();
    scalar_t* u = up.mutable_data_ptr<scalar_t>();
    scalar_t* ds = dsp.mutable_data_ptr<scalar_t>();
    glu_into<scalar_t>(qp, mp, u, N, T, E, K);
    at::parallel_for(0, N * T, 256, [&](int64_t begin, int64_t end) {           // ds = dz silu'(s)
      const Vec one(1);
      for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / T, t = row % T;
        for (int64_t c = 0; c < E; c += Vec::size()) {
          const int64_t w = std::min<int64_t>(Vec::size(), E - c);
          const Vec sv = Vec::loadu(spp + row * E + c, w), sg = sigmoid(sv);
          (Vec::loadu(dzp + row * E + c, w) * sg * at::vec::fmadd(sv, one - sg, one)).store(ds + (n * Tp + t + pad) * E + c, w);
        }
      }
    });
    scalar_t* dup = du.mutable_data_ptr<scalar_t>();
    depthwise<scalar_t>(ds, wflip.const_data_ptr<scalar_t>(), nullptr, N, T, E, K,
                        [&](int64_t row, int64_t c, int64_t w, const Vec& acc) { acc.store(dup + row * E + c, w); });
    // dw_k = sum over frames of ds_t u_{t+k-pad}; every chunk of frames sums into its own slice
    scalar_t *dwp = dw_parts.mutable_data_ptr<scalar_t>(), *dbp = db_parts.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t ch = begin; ch < end; ++ch) {
        const int64_t r0 = ch * N * T / chunks, r1 = (ch + 1) * N * T / chunks;
        for (int64_t row = r0; row < r1; ++row) {
          const int64_t n = row / T, t = row % T;
          const scalar_t* d = ds + (n * Tp + t + pad) * E;
          const scalar_t* x = u + (n * Tp + t) * E;                             // u_{t + k - pad}, k = 0
          for (int64_t c = 0; c < E; c += Vec::size()) {
            const int64_t w = std::min<int64_t>(Vec::size(), E - c);
            const Vec dv = Vec::loadu(d + c, w);
            (Vec::loadu(dbp + ch * E + c, w) + dv).store(dbp + ch * E + c, w);
            for (int64_t k = 0; k < K; ++k) {
              scalar_t* acc = dwp + (ch * K + k) * E + c;
              at::vec::fmadd(dv, Vec::loadu(x + k * E + c, w), Vec::loadu(acc, w)).store(acc, w);
            }
          }
        }
      }
    });
    at::parallel_for(0, N * T, 256, [&](int64_t begin, int64_t end) {           // GLU's backward
      const Vec one(1);
      for (int64_t row = begin; row < end; ++row) {
        const scalar_t* qr = qp + row * 2 * E;
        scalar_t* dqr = dq.mutable_data_ptr<scalar_t>() + row * 2 * E;
        const Vec mv(mp[row]);
        for (int64_t c = 0; c < E; c += Vec::size()) {
          const int64_t w = std::min<int64_t>(Vec::size(), E - c);
          const Vec a = Vec::loadu(qr + c, w), sb = sigmoid(Vec::loadu(qr + E + c, w));
          const Vec g = Vec::loadu(dup + row * E + c, w) * mv;
          (g * sb).store(dqr + c, w);
          (g * a * sb * (one - sb)).store(dqr + E + c, w);
        }
      }
    });
  });
  at::Tensor dweight = dw_parts.sum(0).t().reshape({E, 1, K}).contiguous();
  return {dq, dweight, db_parts.sum(0)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(press_kernels, m) {
  m.def("glu_conv_forward(Tensor q, Tensor mask, Tensor weight, Tensor bias, bool keep_state) -> (Tensor, Tensor)");
  m.def("glu_conv_backward(Tensor q, Tensor mask, Tensor weight, Tensor s, Tensor dz) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(press_kernels, CPU, m) {
  m.impl("glu_conv_forward", &glu_conv_forward);
  m.impl("glu_conv_backward", &glu_conv_backward);
}
