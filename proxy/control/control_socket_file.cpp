// The socket file's life: its directory, a stale file left by a finwave that is gone,
// its owner and mode, binding and listening; removing it (only our own) at the end.
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "netfilter/unique_fd.hpp"
#include "proxy/control/control_server_entry.hpp"

namespace finwave::proxy {
namespace {

constexpr std::uint64_t kDeadlineTickMs = 50;

// mkdir -p with mode 0755 for the directories that do not exist yet.
void make_parent_directories(const std::string& path) {
  for (std::size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string directory = path.substr(0, slash);
    if (::mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) {
      throw std::runtime_error("cannot create the control socket's directory " + directory + ": " +
                               errno_text(errno));
    }
  }
}

// What is at `path`: nothing, a socket someone listens on, a stale socket, or something else.
enum class PathState { kFree, kLive, kStale, kNotSocket };

PathState probe_path(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return PathState::kFree;
  if (!S_ISSOCK(st.st_mode)) return PathState::kNotSocket;
  const nf::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw std::runtime_error("socket(AF_UNIX): " + errno_text(errno));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  const int result =
      ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  const int error = errno;
  if (result == 0) return PathState::kLive;
  // A full backlog (EAGAIN) still means someone listens. ECONNREFUSED is a socket file whose
  // owner is gone: the file outlives a crashed (or kill -9'd) daemon.
  if (error == ECONNREFUSED) return PathState::kStale;
  if (error == EAGAIN) return PathState::kLive;
  throw std::runtime_error("cannot probe the existing control socket " + path + ": " +
                           errno_text(error));
}

gid_t lookup_group(const std::string& name) {
  gid_t numeric = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), numeric);
  if (ec == std::errc() && end == name.data() + name.size()) return numeric;
  std::vector<char> buffer(16384);
  group entry{};
  group* found = nullptr;
  const int error = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (error != 0 || found == nullptr) {
    throw std::runtime_error("--control-group: no group named '" + name + "'");
  }
  return found->gr_gid;
}

// Root only (0600), or root and the members of `group` (0660).
void set_owner_and_mode(const std::string& path, std::optional<gid_t> gid,
                        const std::string& group) {
  if (gid) {
    if (::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0 ||
        ::chmod(path.c_str(), 0660) != 0) {
      throw std::runtime_error("cannot give the control socket to group " + group + ": " +
                               errno_text(errno));
    }
  } else if (::chmod(path.c_str(), 0600) != 0) {
    throw std::runtime_error("cannot chmod the control socket: " + errno_text(errno));
  }
}

}  // namespace

void ControlServer::start() {
  const std::string& path = config_.path;
  const bool with_group = !config_.group.empty();
  const gid_t gid = with_group ? lookup_group(config_.group) : 0;
  prepare_path(path);
  auto check = [](int error, const std::string& what) {
    if (error != 0) throw std::runtime_error(what + ": " + uv_strerror(error));
  };
  check(listener_.init(uv_pipe_init, loop_, this, 0), "cannot create the control socket");
  // The socket file is created by bind(): the umask keeps it from ever being reachable by
  // others, even for the moment before the chmod below.
  const mode_t old_mask = ::umask(0177);
  const int bound = uv_pipe_bind(listener_.get(), path.c_str());
  ::umask(old_mask);
  check(bound, "cannot bind the control socket " + path);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    socket_inode_ = st.st_ino;
    socket_device_ = st.st_dev;
  }
  set_owner_and_mode(path, with_group ? std::optional<gid_t>(gid) : std::nullopt, config_.group);
  check(uv_listen(reinterpret_cast<uv_stream_t*>(listener_.get()), 128,
                  &ControlServer::on_connection),
        "cannot listen on the control socket " + path);
  check(timer_.init(uv_timer_init, loop_, this), "cannot create a timer");
  check(uv_timer_start(timer_.get(), &ControlServer::on_timer, kDeadlineTickMs, kDeadlineTickMs),
        "cannot start a timer");
  started_ = true;
  log("listening on " + path +
      (with_group ? " (group " + config_.group + ", mode 0660)" : " (mode 0600)"));
}

void ControlServer::prepare_path(const std::string& path) {
  if (path.empty()) throw std::runtime_error("--control: empty path");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    throw std::runtime_error("--control: the path " + path + " is longer than " +
                             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                             " bytes, the limit of a Unix socket address");
  }
  make_parent_directories(path);
  switch (probe_path(path)) {
    case PathState::kFree:
      break;
    case PathState::kLive:
      throw std::runtime_error("another finwave is already listening on the control socket " +
                               path + "; stop it first, or give this one --control PATH");
    case PathState::kNotSocket:
      throw std::runtime_error("--control: " + path +
                               " exists and is not a socket; not touching it");
    case PathState::kStale:
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        throw std::runtime_error("cannot remove the stale control socket " + path + ": " +
                                 errno_text(errno));
      }
      log("replaced the stale socket " + path + " (left by a finwave that is gone)");
      break;
  }
}

void ControlServer::unlink_socket() noexcept {
  if (socket_inode_ == 0) return;
  // Only our own socket: a finwave started after us with the same path owns a new file.
  struct stat st {};
  if (::lstat(config_.path.c_str(), &st) == 0 && st.st_ino == socket_inode_ &&
      st.st_dev == socket_device_) {
    ::unlink(config_.path.c_str());
  }
  socket_inode_ = 0;
}

}  // namespace finwave::proxy
