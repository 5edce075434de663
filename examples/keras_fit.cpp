// The seed's TensorFlow snippet, line by line in accel, on Fashion-MNIST instead of random data:
//
//   model = tf.keras.Sequential([tf.keras.layers.Dense(256, activation='relu', input_shape=(784,)),
//                                tf.keras.layers.Dense(10, activation='softmax')])
//   model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
//   model.fit(x_train, y_train, epochs=5, batch_size=32)
//
// accel's models end in logits (the loss applies the softmax), so there is no softmax layer.
// Run: ./build/keras_fit_example [DATA_DIR] [EPOCHS]   (prints Keras's progress line per epoch)
#include <cstdio>
#include <cstdlib>

#include "accel/data/fashion_mnist.h"
#include "accel/nn/layers.h"
#include "accel/ops/ops.h"
#include "accel/train/model.h"

using namespace accel;

int main(int argc, char** argv) try {
  const std::string data_dir = argc > 1 ? argv[1] : "";
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 5;
  const auto train_set = data::load_fashion_mnist(data_dir, true);
  const auto test_set = data::load_fashion_mnist(data_dir, false);
  const Tensor x_train = train_set.images.to(DType::Float32) / 255.0;  // as the seed's x / 255.0
  const Tensor x_test = test_set.images.to(DType::Float32) / 255.0;

  train::Model model(nn::Sequential(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10)));
  model.compile({.optimizer = "adam", .loss = "sparse_categorical_crossentropy", .metrics = {"accuracy"}});
  model.fit(x_train, train_set.labels, {.epochs = epochs, .batch_size = 32});

  const train::Logs test = model.evaluate(x_test, test_set.labels);
  std::printf("test loss %.4f - test accuracy %.4f on %s\n", test.at("loss"), test.at("accuracy"),
              model.device().to_string().c_str());
  return 0;
} catch (const Error& e) {
  std::fprintf(stderr, "keras_fit_example: %s\n", e.what());
  return 1;
}
