// SqliteStore: the embedded Store. One connection in WAL mode guarded by a mutex, prepared
// statements cached, and a committer thread for group commits. sqlite3.h stays in the .cpp.
#pragma once

#include <memory>

#include "store/store.hpp"

namespace comfyfarm::store {

class SqliteStore final : public Store {
 public:
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& path,
                                                   const StoreOptions& options = {});
  ~SqliteStore() override;

  Result<int> schema_version() override;
  Result<void> insert_job(const NewJob& job) override;
  Result<void> insert_jobs(const std::vector<NewJob>& jobs) override;
  std::future<Result<void>> submit(NewJob job) override;
  void submit(NewJob job, std::function<void(Result<void>)> done) override;
  Result<JobRecord> get_job(std::string_view id) override;
  Result<JobPage> list_jobs(const JobFilter& filter) override;
  Result<std::vector<JobRecord>> unfinished_jobs() override;
  Result<void> transition(std::string_view id, JobState from, JobState to, std::int64_t at,
                          const TransitionFields& fields = {}) override;
  Result<std::vector<TransitionRecord>> transitions(std::string_view id) override;
  Result<void> record_attempt(const AttemptRecord& attempt) override;
  Result<std::vector<AttemptRecord>> attempts(std::string_view id) override;
  Result<void> add_outputs(std::string_view id, const std::vector<OutputRecord>& outputs) override;
  Result<std::vector<OutputRecord>> outputs(std::string_view id) override;
  Result<void> set_profile(std::string_view id, const boost::json::value& profile) override;
  Result<boost::json::value> get_profile(std::string_view id) override;
  Result<void> set_result(std::string_view id, const boost::json::value& result) override;
  Result<boost::json::value> get_result(std::string_view id) override;
  Result<std::vector<std::pair<std::string, boost::json::value>>> recent_results(std::size_t limit) override;
  Result<std::int64_t> max_number() override;
  Result<void> add_backend(const BackendRecord& backend) override;
  Result<void> update_backend(const BackendRecord& backend) override;
  Result<BackendRecord> get_backend(std::string_view id) override;
  Result<std::vector<BackendRecord>> list_backends() override;
  Result<void> remove_backend(std::string_view id) override;
  Result<std::int64_t> workflow_count() override;

  struct Impl;

 private:
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace comfyfarm::store
