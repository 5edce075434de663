// The reverse-mode engine: walks the tape from a root back to the leaves.
#pragma once

#include "accel/tensor/tensor.h"

namespace accel::autograd {

// Computes d(root)/d(leaf) for every leaf that requires grad reachable from root and adds it
// into leaf.grad(). `gradient` defaults to 1 for a one-element root; other roots need one of
// their own shape.
void backward(const Tensor& root, const Tensor& gradient = Tensor());

}  // namespace accel::autograd
