// The accelerator catalog: the devices a Colab-style runtime offers (the seed's GPU table plus
// H100/H200 and TPUs), with memory, architecture, peak throughput and what each is best for.
// Discovered devices are matched to it by name; the runtime service builds tiers on it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace accel::hw {

struct AcceleratorSpec {
  const char* name;          // "A100 80GB"
  const char* kind;          // "gpu" or "tpu"
  const char* type;          // the runtime type a user asks for: "t4", "a100", "v5e"
  const char* architecture;  // "Ampere"
  double memory_gb;          // per device (TPU: per board, all cores)
  double fp32_tflops;        // dense peak, vendor figures (SXM parts where there are several)
  double half_tflops;        // dense fp16/bf16 tensor peak (T4, V100: fp16 only)
  const char* tiers;         // the seed's tier column: "Free / Pro"
  const char* best_for;      // the seed's "Best For" column
};

std::span<const AcceleratorSpec> accelerator_catalog();

// The entry for a discovered device: its name must contain the entry's model ("Tesla T4",
// "NVIDIA A100-SXM4-80GB"); where a model comes in several sizes, the one closest to
// `memory_bytes` wins. Null when nothing matches.
const AcceleratorSpec* match_catalog(const std::string& device_name, std::uint64_t memory_bytes);

// The entry whose runtime type is `type` ("t4", "a100-80gb"), or null.
const AcceleratorSpec* find_catalog_type(const std::string& type);

}  // namespace accel::hw
