#include "accel/hw/catalog.h"

#include <cctype>
#include <cmath>
#include <cstring>

namespace accel::hw {
namespace {

constexpr AcceleratorSpec kCatalog[] = {
    {"T4", "gpu", "t4", "Turing", 16, 8.1, 65, "Free / Pro", "Inference, fine-tuning small models, general ML"},
    {"V100 16GB", "gpu", "v100", "Volta", 16, 15.7, 125, "Pro / Pro+", "Training medium models, faster computation"},
    {"V100 32GB", "gpu", "v100-32gb", "Volta", 32, 15.7, 125, "Pro / Pro+",
     "Training medium models, faster computation"},
    {"A100 40GB", "gpu", "a100", "Ampere", 40, 19.5, 312, "Pro+ / Enterprise",
     "Training large models, LLM fine-tuning"},
    {"A100 80GB", "gpu", "a100-80gb", "Ampere", 80, 19.5, 312, "Pro+ / Enterprise",
     "Training large models, LLM fine-tuning"},
    {"L4", "gpu", "l4", "Ada Lovelace", 24, 30.3, 121, "Pro / Pro+", "Inference optimization, efficient training"},
    {"H100", "gpu", "h100", "Hopper", 80, 67, 989, "Enterprise", "Large-scale training, LLM pre-training"},
    {"H200", "gpu", "h200", "Hopper", 141, 67, 989, "Enterprise", "Largest models, long contexts, memory-bound work"},
    {"TPU v2-8", "tpu", "v2-8", "TPU v2", 64, 0, 180, "Free / Pro", "Large-batch training with JAX/TensorFlow"},
    {"TPU v3-8", "tpu", "v3-8", "TPU v3", 128, 0, 420, "Pro / Pro+", "Large-batch training with JAX/TensorFlow"},
    {"TPU v5e", "tpu", "v5e", "TPU v5e", 16, 0, 197, "Pro+ / Enterprise", "Cost-efficient training and inference"},
};

// The model word of an entry's name: "A100 80GB" -> "A100".
std::string model_of(const char* name) {
  const char* space = std::strchr(name, ' ');
  return space && std::strncmp(name, "TPU", 3) != 0 ? std::string(name, space) : std::string(name);
}

// Whether `model` appears in `name` as a whole word: "L4" in "NVIDIA L4", not in "NVIDIA L40S".
bool contains_word(const std::string& name, const std::string& model) {
  const auto is_word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  for (std::size_t at = name.find(model); at != std::string::npos; at = name.find(model, at + 1)) {
    const bool starts = at == 0 || !is_word_char(name[at - 1]);
    const std::size_t end = at + model.size();
    const bool ends = end == name.size() || !is_word_char(name[end]);
    if (starts && ends) return true;
  }
  return false;
}

}  // namespace

std::span<const AcceleratorSpec> accelerator_catalog() { return kCatalog; }

const AcceleratorSpec* match_catalog(const std::string& device_name, std::uint64_t memory_bytes) {
  const AcceleratorSpec* best = nullptr;
  const double memory_gb = static_cast<double>(memory_bytes) / 1e9;
  for (const AcceleratorSpec& spec : kCatalog) {
    if (!contains_word(device_name, model_of(spec.name))) continue;
    if (!best || std::abs(spec.memory_gb - memory_gb) < std::abs(best->memory_gb - memory_gb)) best = &spec;
  }
  return best;
}

const AcceleratorSpec* find_catalog_type(const std::string& type) {
  for (const AcceleratorSpec& spec : kCatalog) {
    if (type == spec.type) return &spec;
  }
  return nullptr;
}

}  // namespace accel::hw
