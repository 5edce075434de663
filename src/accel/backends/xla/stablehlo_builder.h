// StableHLO as MLIR text, one op per call: what accel hands a PJRT plugin to compile. Values are
// SSA names with their tensor types, so every op can print its own signature; shapes are checked
// here (a ShapeError names the op) rather than left to the plugin's parser.
//
//   StableHloBuilder b;
//   Value x = b.argument(TensorType({64, 784}));
//   Value w = b.argument(TensorType({256, 784}), /*donate_to_output=*/0);
//   b.results({b.dot(x, w, 1, 1)});
//   std::string mlir = b.module("step");
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace accel::xla {

struct TensorType {
  std::vector<std::int64_t> dims;
  std::string element = "f32";  // f32, i32 or i1
  TensorType() = default;
  explicit TensorType(std::vector<std::int64_t> shape, std::string element_type = "f32")
      : dims(std::move(shape)), element(std::move(element_type)) {}
  static TensorType scalar(std::string element_type = "f32") {
    return TensorType(std::vector<std::int64_t>{}, element_type);
  }
  std::string str() const;  // tensor<64x784xf32>
  std::int64_t elements() const;
  bool operator==(const TensorType&) const = default;
};

struct Value {
  std::string name;  // %3
  TensorType type;
};

enum class Compare { EQ, NE, GT, GE, LT, LE };

class StableHloBuilder {
 public:
  // A function argument. donate_to_output: this argument's buffer becomes output N's
  // (tf.aliasing_output), so a step updates parameters in place instead of allocating new ones.
  Value argument(TensorType type, std::optional<int> donate_to_output = std::nullopt);
  Value constant(float value, TensorType type = TensorType::scalar());  // a splat
  Value iota(TensorType type, int dimension);

  Value add(const Value& a, const Value& b);
  Value subtract(const Value& a, const Value& b);
  Value multiply(const Value& a, const Value& b);
  Value divide(const Value& a, const Value& b);
  Value maximum(const Value& a, const Value& b);
  Value power(const Value& a, const Value& b);
  Value exp(const Value& a);
  Value log(const Value& a);
  Value sqrt(const Value& a);
  Value compare(Compare direction, const Value& a, const Value& b);  // -> i1
  Value select(const Value& predicate, const Value& on_true, const Value& on_false);
  Value convert(const Value& a, const std::string& element);

  // Contracts a's dimension `a_contract` with b's `b_contract` (2-D operands): a matmul with
  // either operand transposed in place, as XLA's dot_general does without a transpose op.
  Value dot(const Value& a, const Value& b, int a_contract, int b_contract);
  // Broadcasts `a` to `type`: a's dimension i becomes the result's dimension dims[i].
  Value broadcast(const Value& a, const TensorType& type, const std::vector<std::int64_t>& dims);
  // a scalar times (or plus) a tensor: the scalar broadcast to the tensor's shape first.
  Value scalar_broadcast(const Value& scalar, const TensorType& type);
  Value reduce_sum(const Value& a, const std::vector<std::int64_t>& dims);
  Value reduce_max(const Value& a, const std::vector<std::int64_t>& dims);
  Value reduce_min(const Value& a, const std::vector<std::int64_t>& dims);
  // Element i of a 1-D tensor, as a scalar.
  Value element(const Value& a, std::int64_t i);
  Value reshape(const Value& a, const TensorType& type);
  // Rows `indices` ([k] i32) of a (rows first): [k, ...a's other dims]; an XLA gather.
  Value gather_rows(const Value& a, const Value& indices);
  // Row `index` (an i32 scalar) of a: a's shape without its first dimension; a dynamic_slice.
  Value dynamic_row(const Value& a, const Value& index);
  // A counted loop: `body` gets the loop counter (an i32 scalar from 0) and the carried values and
  // returns their next values; the result is the carried values after `count` iterations. The
  // regions see only what is carried (everything the body uses from outside must be in `carried`).
  std::vector<Value> for_loop(
      std::int64_t count, const std::vector<Value>& carried,
      const std::function<std::vector<Value>(const Value& counter, const std::vector<Value>& carried)>& body);

  // The sum over `replicas` replicas (all of them in one group): data-parallel gradients.
  Value all_reduce_sum(const Value& a, int replicas);

  // The function's results, then the whole module as text.
  void results(std::vector<Value> values);
  std::string module(const std::string& name) const;

 private:
  Value fresh(TensorType type);
  Value binary(const char* op, const Value& a, const Value& b);
  Value unary(const char* op, const Value& a);
  Value reduce(const char* op, float init, const Value& a, const std::vector<std::int64_t>& dims);

  std::vector<std::string> arguments_;
  std::vector<std::string> body_;
  std::vector<Value> results_;
  int next_ = 0;
  int next_argument_ = 0;
};

}  // namespace accel::xla
