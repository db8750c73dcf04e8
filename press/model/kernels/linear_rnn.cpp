// PRESS-Net's linear-RNN mixer in one pass over memory, forward and backward, on the CPU.
//
// From the in-projection before its bias, P (N, T, 3H), its bias (3H) ([v | f | g] = P + bias: adding
// it here saves the pass over P that addmm spends copying it into the output), and the frame mask
// m (N, T, 1):
//   a_t = m_t sigmoid(f_t) + 1 - m_t                  (padded frames: a = 1, input 0)
//   h_t = a_t h_{t-1} + (1 - a_t) v_t                 (channels [0, split) forward in time,
//                                                      [split, H) backward: h_{t+1} there)
//   y_t = h_t g_t sigmoid(g_t)                        (the SiLU output gate)
// Eager PyTorch runs this as ~8 element-wise kernels and a chunked scan, each a pass over
// (N, T, H) tensors; here every channel walks its frames once, vectorised across channels.
// The backward pass walks them once the other way:
//   delta_t = dy_t silu(g_t) + a_{t+1} delta_{t+1}    (a_{t-1} delta_{t-1} for backward channels)
//   dv = delta (1 - a),  df = delta (h_prev - v) m sigmoid'(f),  dg = dy h silu'(g),
// and the bias's gradient, the sum of [dv | df | dg] over frames, per sequence.
// Mirrors press.model.blocks.LinearRNN term by term; tests/test_kernels.py holds it to that code.
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

constexpr int64_t kBlock = 256;  // channels a task owns: a few cache lines per frame and stream
constexpr int64_t kAhead = 8;   // frames: rows are 3H apart, too far for the hardware prefetcher to follow

// Ask for a row (prefetch_row) or for v, f and g of a frame (prefetch) kAhead frames ahead; prefetching
// past the ends is harmless (a hint, never a fault).
template <typename scalar_t>
inline void prefetch_row(const scalar_t* p, int64_t width) {
  for (int64_t j = 0; j < width; j += 64 / sizeof(scalar_t)) __builtin_prefetch(p + j);
}

template <typename scalar_t>
inline void prefetch(const scalar_t* p, int64_t width, int64_t H) {
  for (int64_t j = 0; j < width; j += 64 / sizeof(scalar_t)) {
    __builtin_prefetch(p + j);
    __builtin_prefetch(p + H + j);
    __builtin_prefetch(p + 2 * H + j);
  }
}

using press_kernels::sigmoid;

// One task: channels [c0, c1) of sequence n, walked in the direction `reverse` says.
struct Span {
  int64_t n, c0, c1;
  bool reverse;
};

std::vector<Span> spans(int64_t N, int64_t H, int64_t split) {
  std::vector<Span> out;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < split; c += kBlock) out.push_back({n, c, std::min(c + kBlock, split), false});
    for (int64_t c = split; c < H; c += kBlock) out.push_back({n, c, std::min(c + kBlock, H), true});
  }
  return out;
}

void check(const at::Tensor& p, const at::Tensor& bias, const at::Tensor& mask, int64_t split) {
  TORCH_CHECK(p.device().is_cpu() && p.dim() == 3 && p.size(2) % 3 == 0, "linear_rnn: P must be (N, T, 3H) on the CPU");
  TORCH_CHECK(bias.is_contiguous() && bias.dim() == 1 && bias.size(0) == p.size(2) && bias.scalar_type() == p.scalar_type(),
              "linear_rnn: bias must be (3H,) of P's dtype");
  TORCH_CHECK(p.is_contiguous() && mask.is_contiguous(), "linear_rnn: P and mask must be contiguous");
  TORCH_CHECK(mask.scalar_type() == p.scalar_type() && mask.dim() == 3 && mask.size(0) == p.size(0) &&
              mask.size(1) == p.size(1) && mask.size(2) == 1, "linear_rnn: mask must be (N, T, 1) of P's dtype");
  TORCH_CHECK(split >= 0 && split <= p.size(2) / 3, "linear_rnn: split must lie in [0, H]");
}

template <typename scalar_t>
void forward_kernel(const scalar_t* P, const scalar_t* B, const scalar_t* M, scalar_t* Y, scalar_t* Hs, int64_t N,
                    int64_t T, int64_t H, int64_t split) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const auto tasks = spans(N, H, split);
  at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
    scalar_t state[kBlock];
    for (int64_t k = begin; k < end; ++k) {
      const Span s = tasks[k];
      const int64_t width = s.c1 - s.c0;
      std::fill(state, state + width, scalar_t(0));
      for (int64_t step = 0; step < T; ++step) {
        const int64_t t = s.reverse ? T - 1 - step : step;
        const int64_t row = s.n * T + t;
        const scalar_t* p = P + row * 3 * H + s.c0;
        prefetch(p + (s.reverse ? -kAhead : kAhead) * 3 * H, width, H);
        const Vec m(M[row]), one_m = Vec(1) - m;
        for (int64_t j = 0; j < width; j += W) {
          const int64_t c = std::min(W, width - j);
          const scalar_t* b = B + s.c0 + j;
          const Vec v = Vec::loadu(p + j, c) + Vec::loadu(b, c), f = Vec::loadu(p + H + j, c) + Vec::loadu(b + H, c),
                    g = Vec::loadu(p + 2 * H + j, c) + Vec::loadu(b + 2 * H, c);
          const Vec a = at::vec::fmadd(m, sigmoid(f), one_m);
          const Vec h = at::vec::fmadd(a, Vec::loadu(state + j, c) - v, v);   // a h + (1 - a) v
          h.store(state + j, c);
          (h * g * sigmoid(g)).store(Y + row * H + s.c0 + j, c);
          if (Hs != nullptr) h.store(Hs + row * H + s.c0 + j, c);
        }
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const scalar_t* P, const scalar_t* B, const scalar_t* M, const scalar_t* Hs, const scalar_t* dY,
                     scalar_t* dP, scalar_t* dB, int64_t N, int64_t T, int64_t H, int64_t split) {
  using Vec = Vectorized<scalar_t>;
  constexpr int64_t W = Vec::size();
  const auto tasks = spans(N, H, split);
  at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
    scalar_t carry[kBlock];  // a_{t+1} delta_{t+1}: what frame t receives from the frame it fed
    for (int64_t k = begin; k < end; ++k) {
      const Span s = tasks[k];
      const int64_t width = s.c1 - s.c0;
      std::fill(carry, carry + width, scalar_t(0));
      scalar_t* db = dB + s.n * 3 * H + s.c0;            // this sequence's bias gradient, zero-initialised
      for (int64_t step = T - 1; step >= 0; --step) {   // the scan's own order, backwards
        const int64_t t = s.reverse ? T - 1 - step : step;
        const int64_t row = s.n * T + t;
        const bool first = step == 0;                    // h_prev = 0 at the scan's first frame
        const int64_t prev_row = s.reverse ? row + 1 : row - 1;
        const scalar_t* p = P + row * 3 * H + s.c0;
        scalar_t* dp = dP + row * 3 * H + s.c0;
        const int64_t ahead = s.reverse ? kAhead : -kAhead;   // the frame this walk reaches kAhead steps on
        prefetch(p + ahead * 3 * H, width, H);
        prefetch_row(Hs + (row + ahead) * H + s.c0, width);
        prefetch_row(dY + (row + ahead) * H + s.c0, width);
        const Vec one(1), m(M[row]), one_m = one - m;
        for (int64_t j = 0; j < width; j += W) {
          const int64_t c = std::min(W, width - j);
          const scalar_t* b = B + s.c0 + j;
          const Vec v = Vec::loadu(p + j, c) + Vec::loadu(b, c), f = Vec::loadu(p + H + j, c) + Vec::loadu(b + H, c),
                    g = Vec::loadu(p + 2 * H + j, c) + Vec::loadu(b + 2 * H, c);
          const Vec dy = Vec::loadu(dY + row * H + s.c0 + j, c), h = Vec::loadu(Hs + row * H + s.c0 + j, c);
          const Vec h_prev = first ? Vec(0) : Vec::loadu(Hs + prev_row * H + s.c0 + j, c);
          const Vec sf = sigmoid(f), sg = sigmoid(g);
          const Vec a = at::vec::fmadd(m, sf, one_m);
          const Vec delta = at::vec::fmadd(dy * g, sg, Vec::loadu(carry + j, c));
          const Vec dv = delta * (one - a), df = delta * (h_prev - v) * m * sf * (one - sf),
                    dg = dy * h * sg * at::vec::fmadd(g, one - sg, one);
          dv.store(dp + j, c);
          df.store(dp + H + j, c);
          dg.store(dp + 2 * H + j, c);
          (Vec::loadu(db + j, c) + dv).store(db + j, c);
          (Vec::loadu(db + H + j, c) + df).store(db + H + j, c);
          (Vec::loadu(db + 2 * H + j, c) + dg).store(db + 2 * H + j, c);
          (a * delta).store(carry + j, c);
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> linear_rnn_forward(const at::Tensor& p, const at::Tensor& bias, const at::Tensor& mask,
                                                      int64_t split, bool keep_state) {
  check(p, bias, mask, split);
  const int64_t N = p.size(0), T = p.size(1), H = p.size(2) / 3;
  at::Tensor y = at::empty({N, T, H}, p.options());
  at::Tensor h = keep_state ? at::empty({N, T, H}, p.options()) : at::empty({0}, p.options());
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "linear_rnn_forward", [&] {
    forward_kernel<scalar_t>(p.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(), mask.const_data_ptr<scalar_t>(),
                             y.mutable_data_ptr<scalar_t>(),
                             keep_state ? h.mutable_data_ptr<scalar_t>() : nullptr, N, T, H, split);
  });
  return {y, h};
}

std::tuple<at::Tensor, at::Tensor> linear_rnn_backward(const at::Tensor& p, const at::Tensor& bias, const at::Tensor& mask,
                                                       const at::Tensor& h, const at::Tensor& dy, int64_t split) {
  check(p, bias, mask, split);
  const int64_t N = p.size(0), T = p.size(1), H = p.size(2) / 3;
  TORCH_CHECK(h.is_contiguous() && dy.is_contiguous() && h.sizes() == dy.sizes() && h.size(0) == N &&
              h.size(1) == T && h.size(2) == H, "linear_rnn: h and dy must be contiguous (N, T, H)");
  at::Tensor dp = at::empty_like(p);
  at::Tensor dbias = at::zeros({N, 3 * H}, p.options());
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "linear_rnn_backward", [&] {
    backward_kernel<scalar_t>(p.const_data_ptr<scalar_t>(), bias.const_data_ptr<scalar_t>(), mask.const_data_ptr<scalar_t>(),
                              h.const_data_ptr<scalar_t>(), dy.const_data_ptr<scalar_t>(), dp.mutable_data_ptr<scalar_t>(),
                              dbias.mutable_data_ptr<scalar_t>(), N, T, H, split);
  });
  return {dp, dbias.sum(0)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(press_kernels, m) {
  m.def("linear_rnn_forward(Tensor p, Tensor bias, Tensor mask, int split, bool keep_state) -> (Tensor, Tensor)");
  m.def("linear_rnn_backward(Tensor p, Tensor bias, Tensor mask, Tensor h, Tensor dy, int split) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(press_kernels, CPU, m) {
  m.impl("linear_rnn_forward", &linear_rnn_forward);
  m.impl("linear_rnn_backward", &linear_rnn_backward);
}
