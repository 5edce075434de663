#include "accel/backends/xla/stablehlo_builder.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "accel/core/error.h"

namespace accel::xla {
namespace {

std::string dims_list(const std::vector<std::int64_t>& dims) {
  std::string text = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

// A float literal that reads back to the same float32: 9 significant digits, or the bits in hex
// for infinities and NaN, which MLIR has no decimal spelling for.
std::string float_literal(float value) {
  char text[32];
  if (!std::isfinite(value)) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    std::snprintf(text, sizeof text, "0x%08X", bits);
    return text;
  }
  std::snprintf(text, sizeof text, "%.9e", static_cast<double>(value));
  return text;
}

void require_same(const char* op, const Value& a, const Value& b) {
  if (a.type != b.type) {
    throw ShapeError(std::string("stablehlo.") + op + ": operands " + a.type.str() + " and " + b.type.str() +
                     " differ");
  }
}

}  // namespace

std::string TensorType::str() const {
  std::string text = "tensor<";
  for (std::int64_t d : dims) text += std::to_string(d) + "x";
  return text + element + ">";
}

std::int64_t TensorType::elements() const {
  std::int64_t n = 1;
  for (std::int64_t d : dims) n *= d;
  return n;
}

Value StableHloBuilder::fresh(TensorType type) { return {"%v" + std::to_string(next_++), std::move(type)}; }

Value StableHloBuilder::argument(TensorType type, std::optional<int> donate_to_output) {
  Value value{"%arg" + std::to_string(next_argument_++), std::move(type)};
  std::string declaration = value.name + ": " + value.type.str();
  if (donate_to_output) declaration += " {tf.aliasing_output = " + std::to_string(*donate_to_output) + " : i32}";
  arguments_.push_back(declaration);
  return value;
}

Value StableHloBuilder::constant(float value, TensorType type) {
  Value result = fresh(type);
  body_.push_back(result.name + " = stablehlo.constant dense<" + float_literal(value) + "> : " + type.str());
  return result;
}

Value StableHloBuilder::iota(TensorType type, int dimension) {
  Value result = fresh(type);
  body_.push_back(result.name + " = stablehlo.iota dim = " + std::to_string(dimension) + " : " + type.str());
  return result;
}

Value StableHloBuilder::binary(const char* op, const Value& a, const Value& b) {
  require_same(op, a, b);
  Value result = fresh(a.type);
  body_.push_back(result.name + " = stablehlo." + op + " " + a.name + ", " + b.name + " : " + a.type.str());
  return result;
}

Value StableHloBuilder::unary(const char* op, const Value& a) {
  Value result = fresh(a.type);
  body_.push_back(result.name + " = stablehlo." + op + " " + a.name + " : " + a.type.str());
  return result;
}

Value StableHloBuilder::add(const Value& a, const Value& b) { return binary("add", a, b); }
Value StableHloBuilder::subtract(const Value& a, const Value& b) { return binary("subtract", a, b); }
Value StableHloBuilder::multiply(const Value& a, const Value& b) { return binary("multiply", a, b); }
Value StableHloBuilder::divide(const Value& a, const Value& b) { return binary("divide", a, b); }
Value StableHloBuilder::maximum(const Value& a, const Value& b) { return binary("maximum", a, b); }
Value StableHloBuilder::power(const Value& a, const Value& b) { return binary("power", a, b); }
Value StableHloBuilder::exp(const Value& a) { return unary("exponential", a); }
Value StableHloBuilder::log(const Value& a) { return unary("log", a); }
Value StableHloBuilder::sqrt(const Value& a) { return unary("sqrt", a); }

Value StableHloBuilder::compare(Compare direction, const Value& a, const Value& b) {
  require_same("compare", a, b);
  static const char* const kNames[] = {"EQ", "NE", "GT", "GE", "LT", "LE"};
  Value result = fresh(TensorType(a.type.dims, "i1"));
  body_.push_back(result.name + " = stablehlo.compare " + kNames[static_cast<int>(direction)] + ", " + a.name + ", " +
                  b.name + " : (" + a.type.str() + ", " + b.type.str() + ") -> " + result.type.str());
  return result;
}

Value StableHloBuilder::select(const Value& predicate, const Value& on_true, const Value& on_false) {
  require_same("select", on_true, on_false);
  if (predicate.type != TensorType(on_true.type.dims, "i1")) {
    throw ShapeError("stablehlo.select: predicate " + predicate.type.str() + " does not match " + on_true.type.str());
  }
  Value result = fresh(on_true.type);
  body_.push_back(result.name + " = stablehlo.select " + predicate.name + ", " + on_true.name + ", " + on_false.name +
                  " : " + predicate.type.str() + ", " + on_true.type.str());
  return result;
}

Value StableHloBuilder::convert(const Value& a, const std::string& element) {
  Value result = fresh(TensorType(a.type.dims, element));
  body_.push_back(result.name + " = stablehlo.convert " + a.name + " : (" + a.type.str() + ") -> " + result.type.str());
  return result;
}

Value StableHloBuilder::dot(const Value& a, const Value& b, int a_contract, int b_contract) {
  if (a.type.dims.size() != 2 || b.type.dims.size() != 2 || a_contract < 0 || a_contract > 1 || b_contract < 0 ||
      b_contract > 1 || a.type.dims[a_contract] != b.type.dims[b_contract]) {
    throw ShapeError("stablehlo.dot_general: cannot contract " + a.type.str() + " dim " + std::to_string(a_contract) +
                     " with " + b.type.str() + " dim " + std::to_string(b_contract));
  }
  Value result = fresh(TensorType({a.type.dims[1 - a_contract], b.type.dims[1 - b_contract]}, a.type.element));
  body_.push_back(result.name + " = stablehlo.dot_general " + a.name + ", " + b.name + ", contracting_dims = [" +
                  std::to_string(a_contract) + "] x [" + std::to_string(b_contract) + "] : (" + a.type.str() + ", " +
                  b.type.str() + ") -> " + result.type.str());
  return result;
}

Value StableHloBuilder::broadcast(const Value& a, const TensorType& type, const std::vector<std::int64_t>& dims) {
  if (dims.size() != a.type.dims.size()) {
    throw ShapeError("stablehlo.broadcast_in_dim: " + a.type.str() + " needs " + std::to_string(a.type.dims.size()) +
                     " dims, given " + dims_list(dims));
  }
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0 || dims[i] >= static_cast<std::int64_t>(type.dims.size()) ||
        (a.type.dims[i] != 1 && a.type.dims[i] != type.dims[static_cast<std::size_t>(dims[i])])) {
      throw ShapeError("stablehlo.broadcast_in_dim: " + a.type.str() + " does not broadcast to " + type.str() +
                       " along " + dims_list(dims));
    }
  }
  Value result = fresh(TensorType(type.dims, a.type.element));
  body_.push_back(result.name + " = stablehlo.broadcast_in_dim " + a.name + ", dims = " + dims_list(dims) + " : (" +
                  a.type.str() + ") -> " + result.type.str());
  return result;
}

Value StableHloBuilder::scalar_broadcast(const Value& scalar, const TensorType& type) {
  if (!scalar.type.dims.empty()) throw ShapeError("scalar_broadcast: " + scalar.type.str() + " is not a scalar");
  if (type.dims.empty()) return scalar;
  return broadcast(scalar, type, {});
}

Value StableHloBuilder::reduce(const char* op, float init, const Value& a, const std::vector<std::int64_t>& dims) {
  std::vector<std::int64_t> kept;
  for (std::size_t i = 0; i < a.type.dims.size(); ++i) {
    bool reduced = false;
    for (std::int64_t d : dims) reduced |= d == static_cast<std::int64_t>(i);
    if (!reduced) kept.push_back(a.type.dims[i]);
  }
  const Value start = constant(init, TensorType::scalar(a.type.element));
  Value result = fresh(TensorType(kept, a.type.element));
  body_.push_back(result.name + " = stablehlo.reduce(" + a.name + " init: " + start.name + ") applies stablehlo." + op +
                  " across dimensions = " + dims_list(dims) + " : (" + a.type.str() + ", " + start.type.str() +
                  ") -> " + result.type.str());
  return result;
}

Value StableHloBuilder::reduce_sum(const Value& a, const std::vector<std::int64_t>& dims) {
  return reduce("add", 0.0f, a, dims);
}

Value StableHloBuilder::reduce_max(const Value& a, const std::vector<std::int64_t>& dims) {
  return reduce("maximum", -std::numeric_limits<float>::infinity(), a, dims);
}

Value StableHloBuilder::reduce_min(const Value& a, const std::vector<std::int64_t>& dims) {
  return reduce("minimum", std::numeric_limits<float>::infinity(), a, dims);
}

Value StableHloBuilder::element(const Value& a, std::int64_t i) {
  if (a.type.dims.size() != 1 || i < 0 || i >= a.type.dims[0]) {
    throw ShapeError("element " + std::to_string(i) + " of " + a.type.str() + ": needs a 1-D tensor that long");
  }
  Value one = fresh(TensorType({1}, a.type.element));
  body_.push_back(one.name + " = \"stablehlo.slice\"(" + a.name + ") {start_indices = array<i64: " + std::to_string(i) +
                  ">, limit_indices = array<i64: " + std::to_string(i + 1) + ">, strides = array<i64: 1>} : (" +
                  a.type.str() + ") -> " + one.type.str());
  Value result = fresh(TensorType::scalar(a.type.element));
  body_.push_back(result.name + " = stablehlo.reshape " + one.name + " : (" + one.type.str() + ") -> " +
                  result.type.str());
  return result;
}

Value StableHloBuilder::reshape(const Value& a, const TensorType& type) {
  if (a.type.elements() != type.elements()) {
    throw ShapeError("stablehlo.reshape: " + a.type.str() + " cannot become " + type.str());
  }
  Value result = fresh(TensorType(type.dims, a.type.element));
  body_.push_back(result.name + " = stablehlo.reshape " + a.name + " : (" + a.type.str() + ") -> " + result.type.str());
  return result;
}

Value StableHloBuilder::gather_rows(const Value& a, const Value& indices) {
  if (a.type.dims.empty() || indices.type.dims.size() != 1 || indices.type.element != "i32") {
    throw ShapeError("gather_rows: rows of " + a.type.str() + " by " + indices.type.str() + " (needs [k] i32)");
  }
  const std::int64_t k = indices.type.dims[0];
  const Value column = reshape(indices, TensorType({k, 1}, "i32"));
  std::vector<std::int64_t> result_dims = {k}, slice = {1}, offset_dims;
  for (std::size_t d = 1; d < a.type.dims.size(); ++d) {
    result_dims.push_back(a.type.dims[d]);
    slice.push_back(a.type.dims[d]);
    offset_dims.push_back(static_cast<std::int64_t>(d));
  }
  std::string slice_text;
  for (std::size_t i = 0; i < slice.size(); ++i) slice_text += (i ? ", " : "") + std::to_string(slice[i]);
  Value result = fresh(TensorType(result_dims, a.type.element));
  body_.push_back(result.name + " = \"stablehlo.gather\"(" + a.name + ", " + column.name +
                  ") {dimension_numbers = #stablehlo.gather<offset_dims = " + dims_list(offset_dims) +
                  ", collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 1>, slice_sizes = "
                  "array<i64: " +
                  slice_text + ">, indices_are_sorted = false} : (" + a.type.str() + ", " + column.type.str() +
                  ") -> " + result.type.str());
  return result;
}

Value StableHloBuilder::dynamic_row(const Value& a, const Value& index) {
  if (a.type.dims.empty() || index.type != TensorType::scalar("i32")) {
    throw ShapeError("dynamic_row: row " + index.type.str() + " of " + a.type.str() + " (needs an i32 scalar)");
  }
  std::vector<std::int64_t> row_dims(a.type.dims.begin() + 1, a.type.dims.end());
  std::vector<std::int64_t> slice_dims = {1};
  slice_dims.insert(slice_dims.end(), row_dims.begin(), row_dims.end());
  std::string starts = index.name, types = index.type.str(), sizes = "1";
  if (row_dims.size() > 0) {
    const Value zero = fresh(TensorType::scalar("i32"));
    body_.push_back(zero.name + " = stablehlo.constant dense<0> : tensor<i32>");
    for (std::int64_t d : row_dims) {
      starts += ", " + zero.name;
      types += ", tensor<i32>";
      sizes += ", " + std::to_string(d);
    }
  }
  const Value slice = fresh(TensorType(slice_dims, a.type.element));
  body_.push_back(slice.name + " = \"stablehlo.dynamic_slice\"(" + a.name + ", " + starts +
                  ") {slice_sizes = array<i64: " + sizes + ">} : (" + a.type.str() + ", " + types + ") -> " +
                  slice.type.str());
  return reshape(slice, TensorType(row_dims, a.type.element));
}

std::vector<Value> StableHloBuilder::for_loop(
    std::int64_t count, const std::vector<Value>& carried,
    const std::function<std::vector<Value>(const Value& counter, const std::vector<Value>& carried)>& body) {
  const TensorType counter_type = TensorType::scalar("i32");
  const Value start = fresh(counter_type);
  body_.push_back(start.name + " = stablehlo.constant dense<0> : tensor<i32>");
  std::vector<Value> operands = {start};
  operands.insert(operands.end(), carried.begin(), carried.end());
  std::string operand_names, types;
  for (std::size_t i = 0; i < operands.size(); ++i) {
    operand_names += (i ? ", " : "") + operands[i].name;
    types += (i ? ", " : "") + operands[i].type.str();
  }
  // Each region's block arguments: fresh names of the operands' types.
  const auto block_arguments = [&](std::vector<Value>& values) {
    std::string text;
    for (std::size_t i = 0; i < operands.size(); ++i) {
      values.push_back(fresh(operands[i].type));
      text += (i ? ", " : "") + values.back().name + ": " + values.back().type.str();
    }
    return text;
  };
  // The regions' ops go to their own lists, indented under the while.
  const auto region = [&](const std::function<void()>& emit) {
    std::vector<std::string> outer;
    outer.swap(body_);
    emit();
    outer.swap(body_);
    std::string text;
    for (const auto& line : outer) text += "      " + line + "\n";
    return text;
  };
  std::vector<Value> cond_args, body_args;
  const std::string cond_header = block_arguments(cond_args);
  const std::string cond_text = region([&] {
    const Value limit = fresh(counter_type);
    body_.push_back(limit.name + " = stablehlo.constant dense<" + std::to_string(count) + "> : tensor<i32>");
    const Value more = compare(Compare::LT, cond_args[0], limit);
    body_.push_back("stablehlo.return " + more.name + " : tensor<i1>");
  });
  const std::string body_header = block_arguments(body_args);
  const std::string body_text = region([&] {
    const std::vector<Value> state(body_args.begin() + 1, body_args.end());
    std::vector<Value> next = body(body_args[0], state);
    if (next.size() != state.size()) throw ShapeError("for_loop: the body returned another number of values");
    for (std::size_t i = 0; i < next.size(); ++i) {
      if (next[i].type != state[i].type) {
        throw ShapeError("for_loop: carried value " + std::to_string(i) + " changes type from " + state[i].type.str() +
                         " to " + next[i].type.str());
      }
    }
    const Value one = fresh(counter_type);
    body_.push_back(one.name + " = stablehlo.constant dense<1> : tensor<i32>");
    next.insert(next.begin(), add(body_args[0], one));
    std::string names;
    for (std::size_t i = 0; i < next.size(); ++i) names += (i ? ", " : "") + next[i].name;
    body_.push_back("stablehlo.return " + names + " : " + types);
  });
  const std::string loop = "%loop" + std::to_string(next_++);
  body_.push_back(loop + ":" + std::to_string(operands.size()) + " = \"stablehlo.while\"(" + operand_names +
                  ") ({\n    ^bb0(" + cond_header + "):\n" + cond_text + "    }, {\n    ^bb0(" + body_header + "):\n" +
                  body_text + "    }) : (" + types + ") -> (" + types + ")");
  std::vector<Value> results;
  for (std::size_t i = 1; i < operands.size(); ++i) {
    results.push_back({loop + "#" + std::to_string(i), operands[i].type});
  }
  return results;
}

Value StableHloBuilder::all_reduce_sum(const Value& a, int replicas) {
  if (replicas == 1) return a;
  std::string group;
  for (int r = 0; r < replicas; ++r) group += (r ? ", " : "") + std::to_string(r);
  const std::string scalar = TensorType::scalar(a.type.element).str();
  Value result = fresh(a.type);
  body_.push_back(result.name + " = \"stablehlo.all_reduce\"(" + a.name + ") ({\n    ^bb0(%lhs: " + scalar +
                  ", %rhs: " + scalar + "):\n      %sum = stablehlo.add %lhs, %rhs : " + scalar +
                  "\n      stablehlo.return %sum : " + scalar + "\n    }) {replica_groups = dense<[[" + group +
                  "]]> : tensor<1x" + std::to_string(replicas) + "xi64>} : (" + a.type.str() + ") -> " +
                  result.type.str());
  return result;
}

void StableHloBuilder::results(std::vector<Value> values) { results_ = std::move(values); }

std::string StableHloBuilder::module(const std::string& name) const {
  std::string text = "module @" + name + " {\n  func.func public @main(";
  for (std::size_t i = 0; i < arguments_.size(); ++i) text += (i ? ", " : "") + arguments_[i];
  text += ") -> (";
  for (std::size_t i = 0; i < results_.size(); ++i) text += (i ? ", " : "") + results_[i].type.str();
  text += ") {\n";
  for (const auto& line : body_) text += "    " + line + "\n";
  text += "    return ";
  for (std::size_t i = 0; i < results_.size(); ++i) text += (i ? ", " : "") + results_[i].name;
  text += " : ";
  for (std::size_t i = 0; i < results_.size(); ++i) text += (i ? ", " : "") + results_[i].type.str();
  return text + "\n  }\n}\n";
}

}  // namespace accel::xla
