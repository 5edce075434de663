#include "accel/memory/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "accel/core/error.h"

namespace accel::memory {

struct CachingAllocator::Block {
  Block(std::size_t block_size, char* address, StreamId on_stream, bool in_small_pool)
      : size(block_size), ptr(address), stream(on_stream), small(in_small_pool) {}

  std::size_t size;
  std::size_t requested = 0;
  char* ptr;
  StreamId stream;
  bool small;
  bool allocated = false;
  Block* prev = nullptr;  // neighbours inside the same segment
  Block* next = nullptr;
  std::set<StreamId> stream_uses;
  int pending_events = 0;

  bool is_split() const { return prev != nullptr || next != nullptr; }
};

bool CachingAllocator::BlockOrder::operator()(const Block* a, const Block* b) const {
  if (a->stream != b->stream) return a->stream < b->stream;
  if (a->size != b->size) return a->size < b->size;
  return a->ptr < b->ptr;
}

namespace {

std::size_t round_size(std::size_t size) {
  return size < kMinBlockSize ? kMinBlockSize : kMinBlockSize * ((size + kMinBlockSize - 1) / kMinBlockSize);
}

std::size_t segment_size_for(std::size_t size) {
  if (size <= kSmallSize) return kSmallBuffer;
  if (size < kMinLargeAlloc) return kLargeBuffer;
  return kRoundLarge * ((size + kRoundLarge - 1) / kRoundLarge);
}

std::string format_bytes(std::int64_t bytes) {
  char text[32];
  const double b = static_cast<double>(bytes);
  if (bytes < 1024) {
    std::snprintf(text, sizeof text, "%lld B", static_cast<long long>(bytes));
  } else if (bytes < (1 << 20)) {
    std::snprintf(text, sizeof text, "%.2f KiB", b / 1024.0);
  } else if (bytes < (1ll << 30)) {
    std::snprintf(text, sizeof text, "%.2f MiB", b / 1048576.0);
  } else {
    std::snprintf(text, sizeof text, "%.2f GiB", b / 1073741824.0);
  }
  return text;
}

}  // namespace

// ---- configuration ----------------------------------------------------------------------

AllocatorConfig AllocatorConfig::parse(const std::string& text) {
  AllocatorConfig config;
  std::stringstream items(text);
  for (std::string item; std::getline(items, item, ',');) {
    if (item.empty()) continue;
    const auto colon = item.find(':');
    const std::string key = item.substr(0, colon);
    const std::string value = colon == std::string::npos ? "" : item.substr(colon + 1);
    try {
      if (key == "max_split_size_mb") {
        const long long mb = std::stoll(value);
        if (mb <= static_cast<long long>(kLargeBuffer >> 20)) {
          throw ValueError("ACCEL_ALLOC_CONF: max_split_size_mb must be > 20 (the large segment size), got " + value);
        }
        config.max_split_size = static_cast<std::size_t>(mb) << 20;
      } else if (key == "per_process_memory_fraction") {
        const double fraction = std::stod(value);
        if (!(fraction > 0.0 && fraction <= 1.0)) {
          throw ValueError("ACCEL_ALLOC_CONF: per_process_memory_fraction must be in (0, 1], got " + value);
        }
        config.memory_fraction = fraction;
      } else {
        throw ValueError("ACCEL_ALLOC_CONF: unknown key '" + key +
                         "' (valid: max_split_size_mb:MB, per_process_memory_fraction:F)");
      }
    } catch (const std::invalid_argument&) {
      throw ValueError("ACCEL_ALLOC_CONF: '" + item + "' needs a number after the colon");
    } catch (const std::out_of_range&) {
      throw ValueError("ACCEL_ALLOC_CONF: '" + item + "' is out of range");
    }
  }
  return config;
}

AllocatorConfig AllocatorConfig::from_environment() {
  const char* text = std::getenv("ACCEL_ALLOC_CONF");
  AllocatorConfig config = text ? parse(text) : AllocatorConfig{};
  // A runtime of `accel serve` carries its tier's cap in ACCEL_MEMORY_FRACTION.
  if (const char* fraction = std::getenv("ACCEL_MEMORY_FRACTION"); fraction && *fraction && !config.memory_fraction) {
    config.memory_fraction = parse(std::string("per_process_memory_fraction:") + fraction).memory_fraction;
  }
  return config;
}

// ---- allocation -------------------------------------------------------------------------

CachingAllocator::CachingAllocator(std::unique_ptr<DeviceMemory> device, AllocatorConfig config, Device owner)
    : device_(std::move(device)), config_(config), owner_(owner) {}

CachingAllocator::~CachingAllocator() {
  // Segments go back to the device; blocks still held by callers leak with them (as at exit).
  std::set<char*> segments;
  std::vector<Block*> blocks;
  for (Pool* pool : {&small_pool_, &large_pool_}) blocks.insert(blocks.end(), pool->begin(), pool->end());
  for (auto& [ptr, block] : active_) blocks.push_back(block);
  for (Block* block : blocks) {
    Block* head = block;
    while (head->prev) head = head->prev;
    if (segments.insert(head->ptr).second) {
      std::size_t total = 0;
      for (Block* b = head; b; b = b->next) total += b->size;
      device_->raw_free(head->ptr, total);
    }
  }
  for (Block* block : blocks) delete block;
}

void CachingAllocator::update_stat(StatArray& stat, bool small, std::int64_t amount) {
  for (std::size_t index : {std::size_t{kAllPools}, std::size_t{small ? kSmallPool : kLargePool}}) {
    if (amount >= 0) {
      stat[index].increase(amount);
    } else {
      stat[index].decrease(-amount);
    }
  }
}

void CachingAllocator::insert_free(Block* block) {
  (block->small ? small_pool_ : large_pool_).insert(block);
  if (block->is_split()) {
    update_stat(stats_.inactive_split, block->small, 1);
    update_stat(stats_.inactive_split_bytes, block->small, static_cast<std::int64_t>(block->size));
  }
}

void CachingAllocator::erase_free(Block* block) {
  (block->small ? small_pool_ : large_pool_).erase(block);
  if (block->is_split()) {
    update_stat(stats_.inactive_split, block->small, -1);
    update_stat(stats_.inactive_split_bytes, block->small, -static_cast<std::int64_t>(block->size));
  }
}

CachingAllocator::Block* CachingAllocator::find_free_block(Pool& pool, std::size_t size, StreamId stream) {
  Block key(size, nullptr, stream, false);
  auto it = pool.lower_bound(&key);
  if (it == pool.end() || (*it)->stream != stream) return nullptr;
  Block* block = *it;
  // Do not carve small requests out of oversize blocks, nor waste an oversize block on a much
  // smaller oversize request (PyTorch's max_split_size rules).
  if (size < config_.max_split_size && block->size >= config_.max_split_size) return nullptr;
  if (size >= config_.max_split_size && block->size >= size + kLargeBuffer) return nullptr;
  return block;
}

bool CachingAllocator::should_split(const Block* block, std::size_t size) const {
  const std::size_t remaining = block->size - size;
  if (block->small) return remaining >= kMinBlockSize;
  return size < config_.max_split_size && remaining > kSmallSize;
}

void CachingAllocator::throw_oom(std::size_t request, std::size_t segment_size, const char* reason) {
  ++stats_.num_ooms;
  const std::size_t total = device_->total_memory();
  const std::int64_t allocated = stats_.allocated_bytes[kAllPools].current;
  const std::int64_t reserved = stats_.reserved_bytes[kAllPools].current;
  const std::int64_t unallocated = reserved - allocated;
  std::string message =
      device_->name() + " out of memory: tried to allocate " + format_bytes(static_cast<std::int64_t>(request)) +
      " (a new " + format_bytes(static_cast<std::int64_t>(segment_size)) + " segment; " + reason +
      "). Device: " + format_bytes(static_cast<std::int64_t>(total)) + " total, " +
      format_bytes(static_cast<std::int64_t>(device_->free_memory())) +
      " free. This process: " + format_bytes(allocated) + " allocated by tensors, " + format_bytes(reserved) +
      " reserved in total, " + format_bytes(unallocated) + " reserved but unallocated";
  if (config_.memory_fraction) {
    char cap[96];
    std::snprintf(
        cap, sizeof cap, "; memory fraction cap %g = %s", *config_.memory_fraction,
        format_bytes(static_cast<std::int64_t>(*config_.memory_fraction * static_cast<double>(total))).c_str());
    message += cap;
  }
  message +=
      ". Try, in order: a smaller batch size; gradient accumulation (several small batches per optimizer step); "
      "mixed precision (bf16/fp16 activations take half the memory)";
  // Fragmentation: enough memory is reserved but free, just not in one usable block.
  if (unallocated >= static_cast<std::int64_t>(request)) {
    message += "; empty_cache() or ACCEL_ALLOC_CONF=max_split_size_mb:N, since " + format_bytes(unallocated) +
               " is reserved but unallocated (fragmentation)";
  }
  message += ".";
  throw OutOfMemoryError(message);
}

CachingAllocator::Block* CachingAllocator::allocate_segment(std::size_t segment_size, std::size_t request, bool small,
                                                            StreamId stream) {
  const auto over_cap = [&] {
    if (!config_.memory_fraction) return false;
    const double cap = *config_.memory_fraction * static_cast<double>(device_->total_memory());
    return static_cast<double>(stats_.reserved_bytes[kAllPools].current) + static_cast<double>(segment_size) > cap;
  };
  void* ptr = over_cap() ? nullptr : device_->raw_allocate(segment_size);
  if (!ptr) {
    // Give the cache back to the device and try once more, as PyTorch does.
    release_cached_blocks();
    ++stats_.num_alloc_retries;
    ptr = over_cap() ? nullptr : device_->raw_allocate(segment_size);
    if (!ptr)
      throw_oom(request, segment_size, over_cap() ? "over the per-process memory fraction" : "the device has no room");
  }
  ++stats_.num_device_alloc;
  update_stat(stats_.segment, small, 1);
  update_stat(stats_.reserved_bytes, small, static_cast<std::int64_t>(segment_size));
  return new Block(segment_size, static_cast<char*>(ptr), stream, small);
}

void* CachingAllocator::malloc(std::size_t bytes, StreamId stream) {
  if (bytes == 0) return nullptr;
  std::lock_guard<std::mutex> lock(mutex_);
  process_events();
  const std::size_t size = round_size(bytes);
  const bool small = size <= kSmallSize;
  Pool& pool = small ? small_pool_ : large_pool_;
  Block* block = find_free_block(pool, size, stream);
  if (block) {
    erase_free(block);
  } else {
    block = allocate_segment(segment_size_for(size), bytes, small, stream);
  }
  if (should_split(block, size)) {
    auto* rest = new Block(block->size - size, block->ptr + size, stream, small);
    rest->prev = block;
    rest->next = block->next;
    if (rest->next) rest->next->prev = rest;
    block->next = rest;
    block->size = size;
    insert_free(rest);
  }
  block->allocated = true;
  block->requested = bytes;
  active_[block->ptr] = block;
  update_stat(stats_.allocation, small, 1);
  update_stat(stats_.allocated_bytes, small, static_cast<std::int64_t>(block->size));
  update_stat(stats_.active, small, 1);
  update_stat(stats_.active_bytes, small, static_cast<std::int64_t>(block->size));
  update_stat(stats_.requested_bytes, small, static_cast<std::int64_t>(bytes));
  publish();
  return block->ptr;
}

void CachingAllocator::free(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = active_.find(ptr);
  if (it == active_.end()) {
    throw ValueError("CachingAllocator::free: the pointer was not allocated by this allocator (" + device_->name() +
                     ") or was already freed");
  }
  Block* block = it->second;
  active_.erase(it);
  update_stat(stats_.allocation, block->small, -1);
  update_stat(stats_.allocated_bytes, block->small, -static_cast<std::int64_t>(block->size));
  update_stat(stats_.requested_bytes, block->small, -static_cast<std::int64_t>(block->requested));
  publish();
  if (!block->stream_uses.empty()) {
    // Other streams may still read it: reuse waits for an event on each of them.
    for (StreamId s : block->stream_uses) pending_events_.emplace_back(device_->record_event(s), block);
    block->pending_events = static_cast<int>(block->stream_uses.size());
    block->stream_uses.clear();
    return;
  }
  free_block(block);
}

void CachingAllocator::deallocate(void* ptr, std::size_t) noexcept {
  try {
    free(ptr);
  } catch (...) {  // a storage can only hold pointers this allocator gave it
  }
}

void CachingAllocator::record_stream(void* ptr, StreamId stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = active_.find(ptr);
  if (it == active_.end()) throw ValueError("record_stream: the pointer is not an allocated block of this allocator");
  if (stream != it->second->stream) it->second->stream_uses.insert(stream);
}

void CachingAllocator::free_block(Block* block) {
  block->allocated = false;
  update_stat(stats_.active, block->small, -1);
  update_stat(stats_.active_bytes, block->small, -static_cast<std::int64_t>(block->size));
  // Merge with free neighbours of the same segment.
  for (Block* neighbour : {block->prev, block->next}) {
    if (!neighbour || neighbour->allocated || neighbour->pending_events > 0) continue;
    erase_free(neighbour);
    if (neighbour == block->prev) {
      block->ptr = neighbour->ptr;
      block->prev = neighbour->prev;
      if (block->prev) block->prev->next = block;
    } else {
      block->next = neighbour->next;
      if (block->next) block->next->prev = block;
    }
    block->size += neighbour->size;
    delete neighbour;
  }
  insert_free(block);
}

void CachingAllocator::process_events() {
  if (pending_events_.empty()) return;
  std::vector<std::pair<EventId, Block*>> still;
  for (auto& [event, block] : pending_events_) {
    if (!device_->event_done(event)) {
      still.emplace_back(event, block);
      continue;
    }
    device_->release_event(event);
    if (--block->pending_events == 0) free_block(block);
  }
  pending_events_.swap(still);
}

void CachingAllocator::release_cached_blocks() {
  device_->synchronize();
  process_events();
  for (Pool* pool : {&small_pool_, &large_pool_}) {
    for (auto it = pool->begin(); it != pool->end();) {
      Block* block = *it;
      if (block->is_split()) {  // part of a segment that still holds live blocks
        ++it;
        continue;
      }
      it = pool->erase(it);
      device_->raw_free(block->ptr, block->size);
      ++stats_.num_device_free;
      update_stat(stats_.segment, block->small, -1);
      update_stat(stats_.reserved_bytes, block->small, -static_cast<std::int64_t>(block->size));
      delete block;
    }
  }
}

// ---- statistics -------------------------------------------------------------------------

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_blocks();
  publish();
}

void CachingAllocator::publish_usage(std::unique_ptr<UsagePublisher> publisher) {
  std::lock_guard<std::mutex> lock(mutex_);
  publisher_ = std::move(publisher);
  publish();
}

void CachingAllocator::publish() {
  if (!publisher_) return;
  publisher_->update(stats_.allocated_bytes[kAllPools].current, stats_.reserved_bytes[kAllPools].current,
                     stats_.allocated_bytes[kAllPools].peak, stats_.reserved_bytes[kAllPools].peak);
}

std::int64_t CachingAllocator::memory_allocated() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_.allocated_bytes[kAllPools].current;
}

std::int64_t CachingAllocator::memory_reserved() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_.reserved_bytes[kAllPools].current;
}

std::int64_t CachingAllocator::max_memory_allocated() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_.allocated_bytes[kAllPools].peak;
}

std::int64_t CachingAllocator::max_memory_reserved() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_.reserved_bytes[kAllPools].peak;
}

void CachingAllocator::reset_peak_memory_stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (StatArray* s :
       {&stats_.allocation, &stats_.segment, &stats_.active, &stats_.inactive_split, &stats_.allocated_bytes,
        &stats_.reserved_bytes, &stats_.active_bytes, &stats_.inactive_split_bytes, &stats_.requested_bytes}) {
    for (Stat& stat : *s) stat.peak = stat.current;
  }
  publish();
}

MemoryStats CachingAllocator::memory_stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {stats_.allocated_bytes[kAllPools].current, stats_.allocated_bytes[kAllPools].peak,
          stats_.allocation[kAllPools].allocated};
}

void CachingAllocator::set_per_process_memory_fraction(double fraction) {
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    throw ValueError("set_per_process_memory_fraction: fraction must be in (0, 1], got " + std::to_string(fraction));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  config_.memory_fraction = fraction;
}

std::optional<double> CachingAllocator::memory_fraction() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return config_.memory_fraction;
}

std::pair<std::size_t, std::size_t> CachingAllocator::mem_get_info() const {
  return {device_->free_memory(), device_->total_memory()};
}

std::vector<CachingAllocator::BlockView> CachingAllocator::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<BlockView> out;
  const auto add = [&](const Block* b) {
    out.push_back({b->ptr, b->size, b->allocated || b->pending_events > 0, b->small});
  };
  for (const Pool* pool : {&small_pool_, &large_pool_}) {
    for (const Block* b : *pool) add(b);
  }
  for (const auto& [ptr, b] : active_) add(b);
  for (const auto& [event, b] : pending_events_) {
    if (std::none_of(out.begin(), out.end(), [&](const BlockView& v) { return v.ptr == b->ptr; })) add(b);
  }
  std::sort(out.begin(), out.end(), [](const BlockView& a, const BlockView& b) { return a.ptr < b.ptr; });
  return out;
}

std::string CachingAllocator::memory_summary() const {
  const MemoryStats s = memory_stats();
  std::string out;
  char line[160];
  const std::string rule(75, '=');
  const std::string thin(75, '-');
  out += "|" + rule + "|\n";
  std::snprintf(line, sizeof line, "|%-75s|\n",
                ("                 accel memory summary, device " + device_->name()).c_str());
  out += line;
  out += "|" + thin + "|\n";
  std::snprintf(line, sizeof line, "|            OOMs: %-12lld        |        alloc retries: %-12lld   |\n",
                static_cast<long long>(s.num_ooms), static_cast<long long>(s.num_alloc_retries));
  out += line;
  out += "|" + rule + "|\n";
  out += "|        Metric         | Cur Usage  | Peak Usage | Tot Alloc  | Tot Freed  |\n";
  const auto section = [&](const char* title, const StatArray& stat, bool bytes) {
    out += "|" + thin + "|\n";
    const char* labels[] = {title, "      from large pool", "      from small pool"};
    for (std::size_t p : {std::size_t{kAllPools}, std::size_t{kLargePool}, std::size_t{kSmallPool}}) {
      const std::size_t label = p == kAllPools ? 0 : (p == kLargePool ? 1 : 2);
      const auto cell = [&](std::int64_t v) { return bytes ? format_bytes(v) : std::to_string(v); };
      std::snprintf(line, sizeof line, "| %-22s| %10s | %10s | %10s | %10s |\n", labels[label],
                    cell(stat[p].current).c_str(), cell(stat[p].peak).c_str(), cell(stat[p].allocated).c_str(),
                    cell(stat[p].freed).c_str());
      out += line;
    }
  };
  section("Allocated memory", s.allocated_bytes, true);
  section("Active memory", s.active_bytes, true);
  section("Requested memory", s.requested_bytes, true);
  section("Reserved memory", s.reserved_bytes, true);
  section("Non-releasable memory", s.inactive_split_bytes, true);
  section("Allocations", s.allocation, false);
  section("Active allocs", s.active, false);
  section("Reserved segments", s.segment, false);
  section("Non-releasable allocs", s.inactive_split, false);
  out += "|" + rule + "|\n";
  return out;
}

}  // namespace accel::memory
