#include "store/store.hpp"

#include "store/sqlite_store.hpp"

namespace comfyfarm::store {

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& path,
                                           const StoreOptions& options) {
  auto s = SqliteStore::open(path, options);
  if (!s) return s.error();
  return std::unique_ptr<Store>(std::move(*s));
}

}  // namespace comfyfarm::store
