#include "accel/data/fashion_mnist.h"

#include <filesystem>

#include "accel/data/idx.h"

namespace accel::data {

LabelledImages load_fashion_mnist(const std::string& dir_arg, bool train) {
  const std::string dir = dir_arg.empty() ? kFashionMnistDefaultDir : dir_arg;
  const std::string prefix = train ? "train" : "t10k";
  const auto find = [&](const std::string& stem) {
    for (const std::string& name : {stem + ".gz", stem}) {
      const std::filesystem::path path = std::filesystem::path(dir) / name;
      if (std::filesystem::exists(path)) return path.string();
    }
    throw DataError("Fashion-MNIST not found: " + (std::filesystem::path(dir) / (stem + ".gz")).string() +
                    " does not exist. Install Debian's copy with `apt-get install dataset-fashion-mnist` "
                    "(it lands in " +
                    kFashionMnistDefaultDir +
                    "), or pass --data DIR with the four IDX files "
                    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-...)");
  };
  const std::string image_path = find(prefix + "-images-idx3-ubyte");
  const std::string label_path = find(prefix + "-labels-idx1-ubyte");
  IdxArray images = read_idx(image_path);
  IdxArray labels = read_idx(label_path);
  if (images.dims.size() != 3) {
    throw DataError(image_path + ": expected 3 dimensions (images, rows, cols), found " +
                    std::to_string(images.dims.size()));
  }
  if (labels.dims.size() != 1) {
    throw DataError(label_path + ": expected 1 dimension (labels), found " + std::to_string(labels.dims.size()));
  }
  if (images.dims[0] != labels.dims[0]) {
    throw DataError(image_path + " holds " + std::to_string(images.dims[0]) + " images but " + label_path + " holds " +
                    std::to_string(labels.dims[0]) + " labels");
  }
  const std::int64_t n = images.dims[0];
  const std::int64_t pixels = images.dims[1] * images.dims[2];
  LabelledImages out{empty(Shape{n, pixels}, DType::UInt8), empty(Shape{n}, DType::Int64), image_path, label_path};
  std::copy(images.values.begin(), images.values.end(), out.images.data_ptr<std::uint8_t>());
  auto* y = out.labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint8_t label = labels.values[static_cast<std::size_t>(i)];
    if (label > 9) {
      throw DataError(label_path + ": label " + std::to_string(label) + " at index " + std::to_string(i) +
                      " is out of range (Fashion-MNIST labels are 0-9)");
    }
    y[i] = label;
  }
  return out;
}

const char* fashion_mnist_class_name(int label) {
  static const char* const kNames[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                       "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return label >= 0 && label < 10 ? kNames[label] : "unknown";
}

}  // namespace accel::data
