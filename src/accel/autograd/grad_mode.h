// Grad mode: whether ops record autograd history. NoGradGuard turns recording off for a
// scope (evaluation, optimizer updates), like torch.no_grad().
//
//   { autograd::NoGradGuard no_grad; auto logits = model.forward(x); }
#pragma once

namespace accel::autograd {

bool is_grad_enabled();
void set_grad_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard() : previous_(is_grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace accel::autograd

namespace accel {
using autograd::NoGradGuard;
}
