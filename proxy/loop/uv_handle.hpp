#pragma once

#include <uv.h>

#include <utility>

namespace finwave::proxy {

/// Owns one libuv handle of type H (uv_poll_t, uv_timer_t, ...). Move-only. Destroying or
/// close()-ing it calls uv_close(); the memory is freed in the close callback, as libuv requires,
/// so the loop must run once more before uv_loop_close() can succeed.
///
/// Callbacks reach their owner through handle->data; close() clears it first so that a callback
/// still in flight sees nullptr and does nothing.
template <typename H>
class UvHandle {
 public:
  UvHandle() = default;
  UvHandle(UvHandle&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)), live_(std::exchange(other.live_, false)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      close();
      handle_ = std::exchange(other.handle_, nullptr);
      live_ = std::exchange(other.live_, false);
    }
    return *this;
  }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() { close(); }

  /// Allocates the handle and runs `init(loop, handle, args...)` (uv_timer_init, uv_poll_init,
  /// ...); `owner` becomes handle->data. Returns init's result (0 or a negative libuv error).
  template <typename Init, typename... Args>
  int init(Init init_fn, uv_loop_t* loop, void* owner, Args&&... args) {
    close();
    handle_ = new H{};
    const int result = init_fn(loop, handle_, std::forward<Args>(args)...);
    if (result != 0) {
      delete handle_;
      handle_ = nullptr;
      return result;
    }
    live_ = true;
    handle_->data = owner;
    return 0;
  }

  H* get() const noexcept { return handle_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }

  /// Starts closing the handle (idempotent).
  void close() noexcept {
    if (handle_ == nullptr) return;
    auto* base = reinterpret_cast<uv_handle_t*>(handle_);
    base->data = nullptr;
    if (live_ && uv_is_closing(base) == 0) {
      uv_close(base, [](uv_handle_t* closed) { delete reinterpret_cast<H*>(closed); });
    }
    handle_ = nullptr;
    live_ = false;
  }

 private:
  H* handle_ = nullptr;
  bool live_ = false;
};

}  // namespace finwave::proxy
