#include "accel/data/staged_batches.h"

#include <numeric>
#include <string>
#include <utility>

#include "accel/backends/backend_registry.h"
#include "accel/ops/ops.h"
#include "accel/tensor/kernel_args.h"

namespace accel::data {
namespace {

std::size_t row_bytes(const Tensor& t) {
  const std::int64_t rows = std::max<std::int64_t>(t.shape()[0], 1);
  return static_cast<std::size_t>(t.numel() / rows) * element_size(t.dtype());
}

}  // namespace

StagedBatches::PinnedBuffer::PinnedBuffer(Backend& backend, std::size_t bytes)
    : backend_(backend), bytes_(bytes), ptr_(backend.allocate_pinned(bytes)) {}

StagedBatches::PinnedBuffer::~PinnedBuffer() { backend_.free_pinned(ptr_, bytes_); }

StagedBatches::Slot::Slot(Backend& backend, const DataLoader& loader)
    : inputs(backend, row_bytes(loader.inputs()) * static_cast<std::size_t>(loader.batch_size())),
      labels(backend, row_bytes(loader.labels()) * static_cast<std::size_t>(loader.batch_size())),
      device_inputs(empty(with_rows(loader.inputs(), loader.batch_size()), loader.inputs().dtype(), backend.device())),
      device_labels(empty(with_rows(loader.labels(), loader.batch_size()), loader.labels().dtype(), backend.device())) {
}

StagedBatches::StagedBatches(const DataLoader& loader, Device device, std::size_t first, std::size_t depth)
    : StagedBatches(loader, backend_for(device), first, depth) {}

StagedBatches::StagedBatches(const DataLoader& loader, Backend& backend, std::size_t first, std::size_t depth)
    : loader_(loader), backend_(backend), next_(first), end_(loader.size()) {
  if (depth == 0) throw ValueError("StagedBatches: depth must be >= 1");
  for (std::size_t i = 0; i < depth; ++i) slots_.push_back(std::make_unique<Slot>(backend_, loader_));
  std::vector<std::int64_t> order(static_cast<std::size_t>(loader.batch_size()));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  row_order_ = from_vector<std::int64_t>(order, {loader.batch_size()}).to(backend_.device());
  // The device buffers come from the allocator's pool for stream 0, whose earlier kernels may
  // still use those blocks: the first copy into each waits for them as a later one waits for
  // the slot's last gather.
  for (const auto& slot : slots_) slot->consumed = backend_.record_event(backend_.default_stream());
  thread_.emplace(
      first, end_, [this](std::size_t index) { return slot_of(index).state == SlotState::Free; },
      [this](std::size_t index) -> std::function<void()> {
        Slot& slot = slot_of(index);
        const std::int64_t rows = loader_.stored_rows_into(index, slot.inputs.data(), slot.labels.data());
        return [&slot, rows] {
          slot.rows = rows;
          slot.state = SlotState::Filled;
        };
      });
}

StagedBatches::~StagedBatches() {
  thread_.reset();
  // The copy stream may still read the pinned buffers and write the device buffers, which go
  // back to their allocators now.
  for (const auto& slot : slots_) {
    for (std::optional<Event>* event : {&slot->copied, &slot->consumed}) {
      if (!*event) continue;
      try {
        backend_.synchronize_event(**event);
      } catch (...) {  // a device already failed: its error is raised at its next synchronisation
      }
      backend_.release_event(**event);
    }
  }
}

void StagedBatches::reclaim(bool wait) {
  bool freed = false;
  while (!copying_.empty()) {
    Slot& slot = *copying_.front();
    if (wait && !freed) {
      backend_.synchronize_event(*slot.copied);
    } else if (!backend_.event_done(*slot.copied)) {
      break;
    }
    copying_.pop_front();
    {
      auto lock = thread_->lock();
      slot.state = SlotState::Free;
    }
    freed = true;
  }
  if (freed) thread_->notify();
}

void StagedBatches::replace_event(std::optional<Event>& slot_event, const Event& recorded) {
  if (slot_event) backend_.release_event(*slot_event);
  slot_event = recorded;
}

Batch StagedBatches::next(const Batch& buffers) {
  if (next_ >= end_) {
    throw ValueError("StagedBatches: batch " + std::to_string(next_) + " is past the epoch's " + std::to_string(end_) +
                     " batches");
  }
  Slot& slot = slot_of(next_);
  reclaim(false);
  for (;;) {
    {
      auto lock = thread_->lock();
      thread_->wait(lock, [&] { return slot.state != SlotState::Free; });
      if (slot.state == SlotState::Filled) break;
    }
    reclaim(true);  // the slot's last copy still reads it, and the loader waits for it
  }

  const Device device = backend_.device();
  const Stream copy = backend_.copy_stream(), compute = backend_.default_stream();
  // The device buffers are written again only after the gather that last read them (or, the
  // first time, after stream 0's work before the slots were made).
  backend_.wait_event(copy, *slot.consumed);
  const auto count = static_cast<std::size_t>(slot.rows);
  backend_.copy_from_host(slot.device_inputs.raw_data(), slot.inputs.data(), count * row_bytes(slot.device_inputs),
                          copy);
  backend_.copy_from_host(slot.device_labels.raw_data(), slot.labels.data(), count * row_bytes(slot.device_labels),
                          copy);
  replace_event(slot.copied, backend_.record_event(copy));

  backend_.wait_event(compute, *slot.copied);
  Batch out = buffers;
  if (!can_hold_batch(out, slot.rows, slot.device_inputs, slot.device_labels, device)) {
    out = {empty(with_rows(slot.device_inputs, slot.rows), DType::Float32, device),
           empty(with_rows(slot.device_labels, slot.rows), slot.device_labels.dtype(), device)};
  }
  // take_rows_into's kernel, called on backend_ itself (every device call of this class is).
  const Tensor rows = row_order_.slice(0, 0, slot.rows);
  for (const auto& [from, to] : {std::pair{&slot.device_inputs, &out.inputs}, {&slot.device_labels, &out.labels}}) {
    const std::int64_t width = static_cast<std::int64_t>(row_bytes(*from) / element_size(from->dtype()));
    backend_.gather_rows(desc_as(*from, {from->shape()[0], width}, "StagedBatches"), desc(rows, "StagedBatches"),
                         desc_as(*to, {slot.rows, width}, "StagedBatches"), compute);
  }
  replace_event(slot.consumed, backend_.record_event(compute));
  {
    auto lock = thread_->lock();
    slot.state = SlotState::Copying;
  }
  copying_.push_back(&slot);
  ++next_;  // only now: after a failure above the slot still holds this batch, for a retry
  return out;
}

}  // namespace accel::data
