// Helpers the kernels share (one home): element-wise math on ATen's vector type.
#pragma once

#include <ATen/cpu/vec/vec.h>

namespace press_kernels {

// 1 / (1 + exp(-x)), lane by lane; exp is ATen's vectorised one (Sleef where the CPU has it).
template <typename scalar_t>
inline at::vec::Vectorized<scalar_t> sigmoid(const at::vec::Vectorized<scalar_t>& x) {
  const at::vec::Vectorized<scalar_t> one(1);
  return one / (one + x.neg().exp());
}

}  // namespace press_kernels
