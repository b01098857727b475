#include "net/ready_file.hpp"

#include <boost/json/serialize.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <unistd.h>

namespace comfyfarm::net {

namespace {

Error io_fail(std::string_view what, const std::filesystem::path& path, int err) {
  std::string message(what);
  message += " '";
  message += path.string();
  message += "': ";
  message += std::strerror(err);
  return fail(Errc::kUnavailable, std::move(message));
}

}  // namespace

Result<void> write_file_atomically(const std::filesystem::path& path, std::string_view contents) {
  static std::atomic<unsigned> counter{0};
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const auto temp = dir / ("." + path.filename().string() + ".tmp." + std::to_string(::getpid()) +
                           "." + std::to_string(counter.fetch_add(1)));

  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_fail("cannot create", temp, errno);
  std::size_t written = 0;
  while (written < contents.size()) {
    const auto n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      return io_fail("cannot write", temp, err);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return io_fail("cannot flush", temp, err);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return io_fail("cannot rename onto", path, err);
  }
  return {};
}

Result<boost::json::object> make_ready_document(std::string_view http_address,
                                                const boost::json::object& extra) {
  if (extra.contains("http") || extra.contains("pid")) {
    return fail(Errc::kInvalidArgument, "ready file extra fields must not hold 'http' or 'pid'");
  }
  boost::json::object doc;
  doc["http"] = http_address;
  for (const auto& field : extra) doc[field.key()] = field.value();
  doc["pid"] = static_cast<std::int64_t>(::getpid());
  return doc;
}

Result<void> write_ready_file(const std::filesystem::path& path, std::string_view http_address,
                              const boost::json::object& extra) {
  auto doc = make_ready_document(http_address, extra);
  if (!doc) return doc.error();
  return write_file_atomically(path, boost::json::serialize(*doc) + "\n");
}

}  // namespace comfyfarm::net
