// RMSNorm over the last dimension, y = x rsqrt(mean(x^2) + eps) w, in one pass per row, and its
// backward in one more: with r = rsqrt(mean(x^2) + eps) and g = dy w,
//   dx = r g - x r^3 mean(g x),   dw = sum over rows of dy x r.
// Eager PyTorch computes it as pow, mean, add, rsqrt and two products (and about twice as many
// kernels backward), each a pass over the (rows, D) tensor. Mirrors torch.nn.functional.rms_norm;
// tests/test_kernels.py holds it to that.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>

namespace {

using at::vec::Vectorized;

template <typename scalar_t>
inline scalar_t sum_of(const Vectorized<scalar_t>& v) {
  return at::vec::vec_reduce_all<scalar_t>([](Vectorized<scalar_t>& a, Vectorized<scalar_t>& b) { return a + b; }, v);
}

void check(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() >= 1 && x.is_contiguous(), "rms_norm: x must be a contiguous CPU tensor");
  TORCH_CHECK(weight.is_contiguous() && weight.dim() == 1 && weight.size(0) == x.size(-1) &&
              weight.scalar_type() == x.scalar_type(), "rms_norm: weight must be (D,) of x's dtype");
}

std::tuple<at::Tensor, at::Tensor> rms_norm_forward(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check(x, weight);
  const int64_t D = x.size(-1), rows = x.numel() / std::max<int64_t>(D, 1);
  at::Tensor y = at::empty_like(x);
  at::Tensor r = at::empty({rows}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm_forward", [&] {
    using Vec = Vectorized<scalar_t>;
    const scalar_t *xp = x.const_data_ptr<scalar_t>(), *wp = weight.const_data_ptr<scalar_t>();
    scalar_t *yp = y.mutable_data_ptr<scalar_t>(), *rp = r.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t* xr = xp + i * D;
        Vec acc(0);
        for (int64_t c = 0; c < D; c += Vec::size()) {
          const Vec v = Vec::loadu(xr + c, std::min<int64_t>(Vec::size(), D - c));  // tail lanes load as 0
          acc = at::vec::fmadd(v, v, acc);
        }
        const scalar_t ri = scalar_t(1) / std::sqrt(sum_of(acc) / scalar_t(D) + scalar_t(eps));
        rp[i] = ri;
        const Vec rv(ri);
        for (int64_t c = 0; c < D; c += Vec::size()) {
          const int64_t w = std::min<int64_t>(Vec::size(), D - c);
          (Vec::loadu(xr + c, w) * rv * Vec::loadu(wp + c, w)).store(yp + i * D + c, w);
        }
      }
    });
  });
  return {y, r};
}

std::tuple<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& r,
                                                     const at::Tensor& dy) {
  check(x, weight);
  const int64_t D = x.size(-1), rows = x.numel() / std::max<int64_t>(D, 1);
  TORCH_CHECK(dy.is_contiguous() && dy.sizes() == x.sizes() && r.numel() == rows, "rms_norm: dy must be x's shape");
  at::Tensor dx = at::empty_like(x);
  // chunks by the number of rows alone, not threads: the same summation order on any machine
  const int64_t chunks = std::clamp<int64_t>(rows / 512, 1, 256);
  at::Tensor dw_parts = at::zeros({chunks, D}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm_backward", [&] {
    using Vec = Vectorized<scalar_t>;
    const scalar_t *xp = x.const_data_ptr<scalar_t>(), *wp = weight.const_data_ptr<scalar_t>();
    const scalar_t *rp = r.const_data_ptr<scalar_t>(), *dyp = dy.const_data_ptr<scalar_t>();
    scalar_t *dxp = dx.mutable_data_ptr<scalar_t>(), *dwp = dw_parts.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t ch = begin; ch < end; ++ch) {
        scalar_t* dw = dwp + ch * D;
        for (int64_t i = ch * rows / chunks; i < (ch + 1) * rows / chunks; ++i) {
          const scalar_t *xr = xp + i * D, *gr = dyp + i * D;
          const Vec rv(rp[i]);
          Vec acc(0);
          for (int64_t c = 0; c < D; c += Vec::size()) {
            const int64_t w = std::min<int64_t>(Vec::size(), D - c);
            const Vec xv = Vec::loadu(xr + c, w), dv = Vec::loadu(gr + c, w);
            acc = at::vec::fmadd(dv * Vec::loadu(wp + c, w), xv, acc);
            at::vec::fmadd(dv * xv, rv, Vec::loadu(dw + c, w)).store(dw + c, w);
          }
          const Vec k(rp[i] * rp[i] * rp[i] * sum_of(acc) / scalar_t(D));
          for (int64_t c = 0; c < D; c += Vec::size()) {
            const int64_t w = std::min<int64_t>(Vec::size(), D - c);
            const Vec xv = Vec::loadu(xr + c, w), g = Vec::loadu(gr + c, w) * Vec::loadu(wp + c, w);
            (rv * g - xv * k).store(dxp + i * D + c, w);
          }
        }
      }
    });
  });
  return {dx, dw_parts.sum(0)};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(press_kernels, m) {
  m.def("rms_norm_forward(Tensor x, Tensor weight, float eps) -> (Tensor, Tensor)");
  m.def("rms_norm_backward(Tensor x, Tensor weight, Tensor r, Tensor dy) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(press_kernels, CPU, m) {
  m.impl("rms_norm_forward", &rms_norm_forward);
  m.impl("rms_norm_backward", &rms_norm_backward);
}
