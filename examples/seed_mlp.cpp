// The seed's PyTorch snippet, line by line in accel:
//
//   device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
//   model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).to(device)
//   optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
//   criterion = nn.CrossEntropyLoss()
//   output = model(x); loss = criterion(output, y); loss.backward(); optimizer.step()
//
// Run: ./build/seed_example [DATA_DIR]   (one epoch over Fashion-MNIST)
#include <cstdio>

#include "accel/data/dataloader.h"
#include "accel/data/fashion_mnist.h"
#include "accel/nn/layers.h"
#include "accel/optim/optimizer.h"
#include "accel/train/seed_trainer.h"

using namespace accel;

int main(int argc, char** argv) try {
  const Device device = train::resolve_device("auto");
  nn::Sequential model(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10));
  model.to(device);
  optim::Adam optimizer(model.parameters(), {.lr = 0.001});
  nn::CrossEntropyLoss criterion;

  const auto train_set = data::load_fashion_mnist(argc > 1 ? argv[1] : "", true);
  data::DataLoader loader(train_set.images, train_set.labels, {.batch_size = 64, .device = device});
  for (std::size_t i = 0; i < loader.size(); ++i) {
    const data::Batch batch = loader.batch(i);
    const Tensor& x = batch.inputs;
    const Tensor& y = batch.labels;
    optimizer.zero_grad();
    Tensor output = model(x);
    Tensor loss = criterion(output, y);
    loss.backward();
    optimizer.step();
    if (i % 200 == 0) std::printf("step %zu  loss %.4f\n", i, loss.item<double>());
  }
  const auto test_set = data::load_fashion_mnist(argc > 1 ? argv[1] : "", false);
  std::printf("test accuracy after one epoch on %s: %.4f\n", device.to_string().c_str(),
              train::evaluate_accuracy(model, test_set, device));
  return 0;
} catch (const Error& e) {
  std::fprintf(stderr, "seed_example: %s\n", e.what());
  return 1;
}
