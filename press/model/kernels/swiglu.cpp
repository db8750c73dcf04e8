// The SwiGLU channel MLP's gate, silu(a) * b from q = [a | b] (rows, 2F), in one pass (eager PyTorch:
// a SiLU kernel over a strided half, then a product, each a pass over memory), and its backward:
//   da = dy b silu'(a),  db = dy silu(a),  silu'(a) = sigmoid(a) (1 + a (1 - sigmoid(a))).
// Mirrors press.model.blocks.SwiGLU; tests/test_kernels.py holds it to that code.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include "vec_math.h"

#include <algorithm>
#include <vector>

namespace {

using at::vec::Vectorized;

using press_kernels::sigmoid;

void check(const at::Tensor& q) {
  TORCH_CHECK(q.device().is_cpu() && q.dim() >= 1 && q.size(-1) % 2 == 0 && q.is_contiguous(),
              "swiglu: q must be a contiguous CPU tensor whose last dimension is even");
}

at::Tensor swiglu_forward(const at::Tensor& q) {
  check(q);
  const int64_t F = q.size(-1) / 2, rows = q.numel() / (2 * F);
  std::vector<int64_t> shape(q.sizes().begin(), q.sizes().end());
  shape.back() = F;
  at::Tensor y = at::empty(shape, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "swiglu_forward", [&] {
    using Vec = Vectorized<scalar_t>;
    const scalar_t* qp = q.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* a = qp + r * 2 * F;
        for (int64_t c = 0; c < F; c += Vec::size()) {
          const int64_t w = std::min<int64_t>(Vec::size(), F - c);
          const Vec av = Vec::loadu(a + c, w);
          (av * sigmoid(av) * Vec::loadu(a + F + c, w)).store(yp + r * F + c, w);
        }
      }
    });
  });
  return y;
}

at::Tensor swiglu_backward(const at::Tensor& q, const at::Tensor& dy) {
  check(q);
  const int64_t F = q.size(-1) / 2, rows = q.numel() / (2 * F);
  TORCH_CHECK(dy.is_contiguous() && dy.numel() == rows * F && dy.scalar_type() == q.scalar_type(),
              "swiglu: dy must be contiguous, q's shape with half its last dimension");
  at::Tensor dq = at::empty_like(q);
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "swiglu_backward", [&] {
    using Vec = Vectorized<scalar_t>;
    const scalar_t *qp = q.const_data_ptr<scalar_t>(), *dyp = dy.const_data_ptr<scalar_t>();
    scalar_t* dqp = dq.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
      const Vec one(1);
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* a = qp + r * 2 * F;
        scalar_t* da = dqp + r * 2 * F;
        for (int64_t c = 0; c < F; c += Vec::size()) {
          const int64_t w = std::min<int64_t>(Vec::size(), F - c);
          const Vec av = Vec::loadu(a + c, w), bv = Vec::loadu(a + F + c, w), g = Vec::loadu(dyp + r * F + c, w);
          const Vec s = sigmoid(av);
          (g * bv * s * at::vec::fmadd(av, one - s, one)).store(da + c, w);
          (g * av * s).store(da + F + c, w);
        }
      }
    });
  });
  return dq;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(press_kernels, m) {
  m.def("swiglu_forward(Tensor q) -> Tensor");
  m.def("swiglu_backward(Tensor q, Tensor dy) -> Tensor");
}

TORCH_LIBRARY_IMPL(press_kernels, CPU, m) {
  m.impl("swiglu_forward", &swiglu_forward);
  m.impl("swiglu_backward", &swiglu_backward);
}
