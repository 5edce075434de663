// Tensors to and from safetensors files, the format PyTorch (safetensors.torch), JAX and Keras
// read: 8 bytes of little-endian header length, a JSON header naming each tensor's dtype, shape
// and byte range ({"0.weight": {"dtype": "F32", "shape": [256, 784], "data_offsets": [0, 802816]},
// "__metadata__": {...}}), then the tensors' bytes, little-endian, row-major. Chosen over a
// format of our own so that a checkpoint is usable outside accel, and over pickle (.pt) because
// loading it runs no code.
#pragma once

#include <map>
#include <string>

#include "accel/tensor/tensor.h"

namespace accel {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;  // on the CPU
  std::map<std::string, std::string> metadata;
};

// Writes atomically: `path`.tmp beside it, fsync, rename, fsync of the folder, so a crash (or
// SIGKILL) mid-write leaves the previous file whole. One writer per path at a time. Tensors on any device are copied
// to the host. Throws Error naming the file on an I/O failure.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads a whole file, checking everything before trusting it: a truncated or corrupted file, an
// unknown dtype, a shape that does not match its byte range, ranges that overlap or leave gaps,
// are DataError naming the file, the tensor and the byte offset.
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace accel
