// The ready file: how a started server tells tests and scripts where it listens (never guessed).
#pragma once

#include "core/error.hpp"

#include <boost/json/object.hpp>

#include <filesystem>
#include <string_view>

namespace comfyfarm::net {

/// Replaces `path` with `contents` atomically: writes a temp file in the same directory, flushes
/// it to disk and renames it over `path`, so a reader sees the old file, no file or the whole new
/// one. Blocking (file I/O); errors are kUnavailable with the path and the system message.
[[nodiscard]] Result<void> write_file_atomically(const std::filesystem::path& path,
                                                 std::string_view contents);

/// The ready file's JSON: `{"http":"HOST:PORT", <extra fields...>, "pid":N}`, pid of this process.
/// `extra` must not hold "http" or "pid" (kInvalidArgument).
[[nodiscard]] Result<boost::json::object> make_ready_document(std::string_view http_address,
                                                              const boost::json::object& extra = {});

/// Writes make_ready_document(...) to `path` with write_file_atomically. Call it once the server
/// listens, with the actual bound address (HttpServer::local_address()).
[[nodiscard]] Result<void> write_ready_file(const std::filesystem::path& path,
                                            std::string_view http_address,
                                            const boost::json::object& extra = {});

}  // namespace comfyfarm::net
