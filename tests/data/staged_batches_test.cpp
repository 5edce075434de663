// Batches staged through pinned host buffers and a copy stream (data::StagedBatches): the host
// loader's batches bit for bit on every present device, and on a lazy device whose streams run
// only when the host waits, so that a buffer reused before the device is done with it shows
// as a wrong batch.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>

#include "../support/present_devices.h"
#include "accel/backends/cpu/cpu_backend.h"
#include "accel/data/staged_batches.h"
#include "accel/ops/ops.h"

using namespace accel;

using accel::testing::present_devices;

namespace {

// The CPU's kernels on two streams (0, and copy_stream() = 1) that run only when the host waits
// for them (synchronize_event, synchronize), as a GPU far behind the host would: a copy reads
// its host buffer when it runs, not when it is queued. event_done is false until then. When
// both streams can go on, `copies_first` picks the copy stream (else the default stream), so
// that a missing wait in either direction reorders the work.
class LazyDevice final : public cpu::CpuBackend {
 public:
  explicit LazyDevice(bool copies_first) : copies_first_(copies_first) {}

  Stream copy_stream() override { return Stream{device(), 1}; }
  void copy_from_host(void* dst, const void* src, std::size_t nbytes, const Stream& s) override {
    if (!pinned(src, nbytes)) ++unpinned_copies;
    queue(s, [this, dst, src, nbytes] {
      if (on_copy) on_copy();
      std::memcpy(dst, src, nbytes);
    });
  }
  void gather_rows(const TensorDesc& src, const TensorDesc& index, const TensorDesc& dst, const Stream& s) override {
    queue(s, [this, src, index, dst, s] { CpuBackend::gather_rows(src, index, dst, s); });
  }
  Event record_event(const Stream& s) override {
    const std::uint64_t id = next_event_++;
    queues_[s.id].push_back({Kind::Record, {}, id});
    ++events_out;
    return Event{device(), id};
  }
  void wait_event(const Stream& s, const Event& e) override { queues_[s.id].push_back({Kind::Wait, {}, e.id}); }
  bool event_done(const Event& e) override { return done_.contains(e.id); }
  void synchronize_event(const Event& e) override {
    run_until([&] { return done_.contains(e.id); });
  }
  void synchronize(const Stream&) override {
    run_until([&] { return queues_[0].empty() && queues_[1].empty(); });
  }
  void release_event(const Event&) noexcept override { --events_out; }
  void* allocate_pinned(std::size_t nbytes) override {
    void* p = CpuBackend::allocate_pinned(nbytes);
    pinned_[static_cast<const char*>(p)] = nbytes;
    return p;
  }
  void free_pinned(void* p, std::size_t nbytes) noexcept override {
    pinned_.erase(static_cast<const char*>(p));
    CpuBackend::free_pinned(p, nbytes);
  }

  // Work of someone else's on the default stream (a kernel that still reads a block the
  // allocator hands out again).
  void queue_kernel(std::function<void()> work) { queue(default_stream(), std::move(work)); }

  int unpinned_copies = 0;
  int events_out = 0;             // recorded and not released
  std::function<void()> on_copy;  // called as each copy runs

 private:
  enum class Kind { Work, Record, Wait };
  struct Item {
    Kind kind;
    std::function<void()> work;
    std::uint64_t event;
  };

  void queue(const Stream& s, std::function<void()> work) { queues_[s.id].push_back({Kind::Work, std::move(work), 0}); }
  bool pinned(const void* p, std::size_t nbytes) const {
    const auto* c = static_cast<const char*>(p);
    auto it = pinned_.upper_bound(c);
    if (it == pinned_.begin()) return false;
    --it;
    return c + nbytes <= it->first + it->second;
  }
  // Runs one item from a stream that can go on; false when neither can.
  bool run_one() {
    for (const std::uint64_t id :
         copies_first_ ? std::array<std::uint64_t, 2>{1, 0} : std::array<std::uint64_t, 2>{0, 1}) {
      std::deque<Item>& q = queues_[id];
      if (q.empty() || (q.front().kind == Kind::Wait && !done_.contains(q.front().event))) continue;
      Item item = std::move(q.front());
      q.pop_front();
      if (item.kind == Kind::Work) item.work();
      if (item.kind == Kind::Record) done_.insert(item.event);
      return true;
    }
    return false;
  }
  void run_until(const std::function<bool()>& reached) {
    while (!reached()) {
      if (!run_one()) throw std::logic_error("LazyDevice: both streams wait for events never recorded");
    }
  }

  bool copies_first_;
  std::map<std::uint64_t, std::deque<Item>> queues_;
  std::set<std::uint64_t> done_;
  std::uint64_t next_event_ = 1;
  std::map<const char*, std::size_t> pinned_;
};

struct Data {
  Tensor images, labels;
};

Data images_and_labels(std::int64_t samples) {
  Generator gen(7);
  return {rand({samples, 5}, gen, 0.0, 255.0).to(DType::UInt8), arange(samples, DType::Int64)};
}

void expect_batch(const data::Batch& got, const data::Batch& want, const std::string& where) {
  EXPECT_EQ(got.inputs.to(kCPU).to_vector<float>(), want.inputs.to_vector<float>()) << where;
  EXPECT_EQ(got.labels.to(kCPU).to_vector<std::int64_t>(), want.labels.to_vector<std::int64_t>()) << where;
}

}  // namespace

TEST(StagedBatches, EveryBatchIsTheHostLoadersOnEveryPresentDevice) {
  const Data data = images_and_labels(43);  // 5 batches of 9 and a short one of 7
  for (const Device device : present_devices()) {
    for (const std::size_t depth : {1, 3}) {
      data::DataLoader loader(data.images, data.labels, {.batch_size = 9, .shuffle = true, .seed = 2});
      const data::Batch buffers{empty({9, 5}, DType::Float32, device), empty({9}, DType::Int64, device)};
      for (int epoch = 0; epoch < 2; ++epoch) {
        // The second epoch starts mid-way, as a resumed checkpoint does.
        const std::size_t first = epoch == 0 ? 0 : 2;
        data::StagedBatches staged(loader, device, first, depth);
        for (std::size_t i = first; i < loader.size(); ++i) {
          const data::Batch got = staged.next(buffers);
          EXPECT_EQ(got.inputs.device(), device);
          // A step's input buffers are written in place; only the short last batch is not theirs.
          EXPECT_EQ(got.inputs.raw_data() == buffers.inputs.raw_data(), i + 1 < loader.size()) << i;
          expect_batch(got, loader.batch(i), device.to_string() + " epoch " + std::to_string(epoch));
        }
        EXPECT_THROW(staged.next(buffers), ValueError) << "past the epoch's end";
        loader.next_epoch();
      }
    }
  }
}

TEST(StagedBatches, FloatInputsAndTwoDimensionalLabelsArriveAsStored) {
  Generator gen(3);
  const Tensor x = rand({20, 3}, gen);
  const Tensor y = rand({20, 2}, gen);
  for (const Device device : present_devices()) {
    data::DataLoader loader(x, y, {.batch_size = 6, .shuffle = true, .seed = 1});
    data::StagedBatches staged(loader, device, 0, 2);
    for (std::size_t i = 0; i < loader.size(); ++i) {
      const data::Batch got = staged.next();
      const data::Batch want = loader.batch(i);
      EXPECT_EQ(got.inputs.to(kCPU).to_vector<float>(), want.inputs.to_vector<float>()) << device.to_string();
      EXPECT_EQ(got.labels.to(kCPU).to_vector<float>(), want.labels.to_vector<float>()) << device.to_string();
    }
  }
}

// The device lags the host by a whole epoch: next() is called for every batch before any of
// them has run. Each slot is reused only when the device is done with it, or the batches differ.
TEST(StagedBatches, NoBufferIsReusedBeforeTheDeviceIsDoneWithIt) {
  const Data data = images_and_labels(61);
  for (const bool copies_first : {true, false}) {
    for (const std::size_t depth : {1, 2, 4}) {
      LazyDevice lazy(copies_first);
      data::DataLoader loader(data.images, data.labels, {.batch_size = 8, .shuffle = true, .seed = 5});
      const std::string where =
          std::string(copies_first ? "copies first" : "kernels first") + ", depth " + std::to_string(depth);
      for (int epoch = 0; epoch < 2; ++epoch) {
        std::vector<data::Batch> got;
        {
          data::StagedBatches staged(loader, lazy, 0, depth);
          for (std::size_t i = 0; i < loader.size(); ++i) got.push_back(staged.next());
          lazy.synchronize(lazy.default_stream());
        }
        for (std::size_t i = 0; i < loader.size(); ++i) expect_batch(got[i], loader.batch(i), where);
        loader.next_epoch();
      }
      // A step's buffers: the device runs each batch's step before the next batch is asked for.
      data::StagedBatches staged(loader, lazy, 0, depth);
      const data::Batch buffers{empty({8, 5}, DType::Float32), empty({8}, DType::Int64)};
      for (std::size_t i = 0; i < loader.size(); ++i) {
        const data::Batch batch = staged.next(buffers);
        lazy.synchronize(lazy.default_stream());
        expect_batch(batch, loader.batch(i), where + ", in the step's buffers");
      }
      EXPECT_EQ(lazy.unpinned_copies, 0) << "every copy reads pinned memory: " << where;
    }
  }
}

TEST(StagedBatches, ReleasesEveryEventItRecords) {
  const Data data = images_and_labels(30);
  LazyDevice lazy(true);
  data::DataLoader loader(data.images, data.labels, {.batch_size = 4});
  {
    data::StagedBatches staged(loader, lazy, 0, 3);
    for (int i = 0; i < 5; ++i) staged.next();  // stopped mid-epoch, with copies in flight
  }
  EXPECT_EQ(lazy.events_out, 0);
  EXPECT_THROW(data::StagedBatches(loader, lazy, 0, 0), ValueError);
}

// The slots' device buffers come from the allocator's pool for the default stream, whose
// earlier kernels may still read them: the first copy into a slot waits for those kernels.
TEST(StagedBatches, TheFirstCopiesWaitForTheDefaultStreamsEarlierWork) {
  const Data data = images_and_labels(30);
  LazyDevice lazy(/*copies_first=*/true);
  bool earlier_kernel_ran = false;
  int copies_too_early = 0;
  lazy.queue_kernel([&] { earlier_kernel_ran = true; });
  lazy.on_copy = [&] { copies_too_early += earlier_kernel_ran ? 0 : 1; };
  data::DataLoader loader(data.images, data.labels, {.batch_size = 4});
  data::StagedBatches staged(loader, lazy, 0, 3);
  for (std::size_t i = 0; i < loader.size(); ++i) staged.next();
  lazy.synchronize(lazy.default_stream());
  EXPECT_TRUE(earlier_kernel_ran);
  EXPECT_EQ(copies_too_early, 0);
}
