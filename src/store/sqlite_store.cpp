#include "store/sqlite_store.hpp"

#include <sqlite3.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace comfyfarm::store {
namespace {

// Each entry moves the schema from version i to i + 1; applied in order in one transaction.
constexpr std::array<std::string_view, Store::kSchemaVersion> kMigrations{{
    R"sql(
CREATE TABLE workflows (
  content_hash TEXT PRIMARY KEY,
  json TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  workflow_hash TEXT NOT NULL REFERENCES workflows(content_hash),
  client_id TEXT NOT NULL DEFAULT '',
  priority INTEGER NOT NULL DEFAULT 0,
  batch_id TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL CHECK (state IN
    ('queued','dispatched','running','succeeded','failed','cancelled')),
  attempts INTEGER NOT NULL DEFAULT 0,
  retry_count INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  backend_id TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_attempted_at INTEGER,
  last_error TEXT,
  needs_regeneration INTEGER NOT NULL DEFAULT 0,
  metadata TEXT,
  extra_data TEXT,
  number INTEGER NOT NULL DEFAULT 0,
  front INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_state ON jobs(state, seq);
CREATE INDEX jobs_by_batch ON jobs(batch_id, seq) WHERE batch_id <> '';
CREATE INDEX jobs_by_client ON jobs(client_id, seq) WHERE client_id <> '';
CREATE TABLE job_attempts (
  job_id TEXT NOT NULL REFERENCES jobs(id),
  attempt INTEGER NOT NULL,
  backend_id TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  outcome TEXT NOT NULL DEFAULT '',
  error TEXT,
  PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;
CREATE TABLE job_transitions (
  seq INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES jobs(id),
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX job_transitions_by_job ON job_transitions(job_id, seq);
CREATE TABLE outputs (
  seq INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES jobs(id),
  node_id TEXT NOT NULL,
  filename TEXT NOT NULL,
  subfolder TEXT NOT NULL DEFAULT '',
  type TEXT NOT NULL DEFAULT 'output',
  backend_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outputs_by_job ON outputs(job_id, seq);
CREATE TABLE backends (
  id TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  state TEXT NOT NULL,
  drained INTEGER NOT NULL DEFAULT 0,
  added_at INTEGER NOT NULL,
  settings TEXT
) WITHOUT ROWID;
CREATE TABLE profiles (
  job_id TEXT PRIMARY KEY REFERENCES jobs(id),
  json TEXT NOT NULL
) WITHOUT ROWID;
)sql",
    R"sql(
CREATE TABLE job_results (
  job_id TEXT PRIMARY KEY REFERENCES jobs(id),
  json TEXT NOT NULL
) WITHOUT ROWID;
)sql",
}};

constexpr std::string_view kJobColumns =
    "j.seq, j.id, j.workflow_hash, w.json, j.client_id, j.priority, j.batch_id, j.state, "
    "j.attempts, j.retry_count, j.max_attempts, j.backend_id, j.created_at, j.updated_at, "
    "j.last_attempted_at, j.last_error, j.needs_regeneration, j.metadata, j.extra_data, "
    "j.number, j.front FROM jobs j JOIN workflows w ON w.content_hash = j.workflow_hash";

std::string content_hash(std::string_view text) {
  const XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return std::string(buf, 32);
}

// JSON null is stored as SQL NULL.
std::string json_text(const boost::json::value& v) {
  return v.is_null() ? std::string() : boost::json::serialize(v);
}

}  // namespace

struct SqliteStore::Impl {
  std::filesystem::path path;
  StoreOptions options;
  sqlite3* db = nullptr;
  std::mutex db_mu;  // guards db and the statement cache
  std::unordered_map<std::string_view, sqlite3_stmt*> stmts;

  // Group commit.
  struct Pending {
    NewJob job;
    std::function<void(Result<void>)> done;
  };
  std::mutex q_mu;
  std::condition_variable q_cv;
  std::deque<Pending> queue;
  bool stopping = false;
  std::thread committer;

  // Background checkpoints (PASSIVE: never blocks the writer) on a second connection.
  std::thread checkpointer;
  std::mutex ckpt_mu;
  std::condition_variable ckpt_cv;
  bool ckpt_stop = false;

  void run_checkpointer() {
    sqlite3* c = nullptr;
    if (sqlite3_open_v2(path.c_str(), &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
      if (c != nullptr) sqlite3_close_v2(c);
      return;  // the writer's commits still work; the WAL only grows until the next start
    }
    sqlite3_busy_timeout(c, 0);
    // A connection learns that the file is in WAL mode when it first reads it.
    sqlite3_exec(c, "PRAGMA schema_version", nullptr, nullptr, nullptr);
    std::unique_lock lk(ckpt_mu);
    for (;;) {
      ckpt_cv.wait_for(lk, options.checkpoint_interval, [&] { return ckpt_stop; });
      const bool last = ckpt_stop;
      lk.unlock();
      // The last one, at close, also truncates the WAL file.
      sqlite3_wal_checkpoint_v2(c, nullptr, last ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE,
                                nullptr, nullptr);
      lk.lock();
      if (last) break;
    }
    sqlite3_close_v2(c);
  }

  ~Impl() {
    {
      std::lock_guard lk(q_mu);
      stopping = true;
    }
    q_cv.notify_all();
    if (committer.joinable()) committer.join();
    {
      std::lock_guard lk(ckpt_mu);
      ckpt_stop = true;
    }
    ckpt_cv.notify_all();
    if (checkpointer.joinable()) checkpointer.join();
    for (auto& [sql, st] : stmts) sqlite3_finalize(st);
    if (db != nullptr) sqlite3_close_v2(db);
  }

  Error sql_error(std::string_view what, int rc) const {
    const int primary = rc & 0xff;
    Errc code = Errc::kInternal;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) code = Errc::kUnavailable;
    if (primary == SQLITE_FULL) code = Errc::kResourceExhausted;
    std::string msg = "store " + path.string() + ": " + std::string(what) + ": ";
    msg += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return fail(code, std::move(msg));
  }

  Result<void> exec(std::string_view sql) {
    char* err = nullptr;
    const std::string s(sql);
    const int rc = sqlite3_exec(db, s.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      return fail(Errc::kInternal, "store " + path.string() + ": " + msg);
    }
    return {};
  }

  // A cached prepared statement, reset and unbound when the guard goes away.
  class Stmt {
   public:
    explicit Stmt(sqlite3_stmt* s) : s_(s) {}
    ~Stmt() {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    sqlite3_stmt* get() const { return s_; }

    // Bound text must outlive the step (bound without a copy).
    void text(int i, std::string_view v) {
      sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), nullptr);
    }
    void text_or_null(int i, const std::string& v) {
      if (v.empty()) {
        sqlite3_bind_null(s_, i);
      } else {
        text(i, v);
      }
    }
    void i64(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
    void opt_i64(int i, const std::optional<std::int64_t>& v) {
      if (v) {
        i64(i, *v);
      } else {
        sqlite3_bind_null(s_, i);
      }
    }
    int step() { return sqlite3_step(s_); }

    std::string col_text(int i) const {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
      if (p == nullptr) return {};
      return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, i)));
    }
    std::int64_t col_i64(int i) const { return sqlite3_column_int64(s_, i); }
    bool col_null(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }
    boost::json::value col_json(int i) const {
      if (col_null(i)) return nullptr;
      boost::system::error_code ec;
      auto v = boost::json::parse(col_text(i), ec);
      if (ec) return nullptr;
      return v;
    }

   private:
    sqlite3_stmt* s_;
  };

  // `sql` must have static storage (it keys the cache).
  Result<sqlite3_stmt*> prepare(std::string_view sql) {
    if (auto it = stmts.find(sql); it != stmts.end()) return it->second;
    sqlite3_stmt* st = nullptr;
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &st, nullptr);
    if (rc != SQLITE_OK) return sql_error("prepare", rc);
    stmts.emplace(sql, st);
    return st;
  }

  // RAII transaction: rolled back unless committed.
  class Txn {
   public:
    explicit Txn(Impl& impl) : impl_(impl) {}
    ~Txn() {
      if (open_) (void)impl_.exec("ROLLBACK");
    }
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;
    Result<void> begin() {
      auto r = impl_.exec("BEGIN IMMEDIATE");
      if (r) open_ = true;
      return r;
    }
    Result<void> commit() {
      auto r = impl_.exec("COMMIT");
      if (r) open_ = false;
      return r;
    }

   private:
    Impl& impl_;
    bool open_ = false;
  };

  // --- opening ------------------------------------------------------------------------------

  // Reads the first bytes without going through SQLite: a non-empty file that does not start
  // with the SQLite header is refused before anything could write to it.
  static Result<void> check_header(const std::filesystem::path& p) {
    std::error_code ec;
    if (!std::filesystem::exists(p, ec)) return {};
    if (std::filesystem::is_directory(p, ec)) {
      return fail(Errc::kInvalidArgument, "store " + p.string() + " is a directory, not a file");
    }
    const auto size = std::filesystem::file_size(p, ec);
    if (ec) return fail(Errc::kUnavailable, "store " + p.string() + ": " + ec.message());
    if (size == 0) return {};
    std::ifstream in(p, std::ios::binary);
    if (!in) return fail(Errc::kUnavailable, "store " + p.string() + " cannot be read");
    char header[16] = {};
    in.read(header, sizeof header);
    if (in.gcount() != sizeof header || std::memcmp(header, "SQLite format 3\0", 16) != 0) {
      return fail(Errc::kFailedPrecondition,
                  "store " + p.string() +
                      " is not a SQLite database (wrong header); refusing to use or overwrite it");
    }
    return {};
  }

  Result<void> open_db() {
    if (auto r = check_header(path); !r) return r;
    const int rc =
        sqlite3_open_v2(path.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      auto e = sql_error("cannot open", rc);
      e.code = Errc::kUnavailable;
      return e;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, options.busy_timeout_ms);
    // Integrity before any write (the WAL switch below writes the header).
    {
      sqlite3_stmt* raw = nullptr;
      int prc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &raw, nullptr);
      if (prc != SQLITE_OK) return corrupt(prc);
      std::string verdict;
      int src = 0;
      while ((src = sqlite3_step(raw)) == SQLITE_ROW) {
        const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
        if (t != nullptr) {
          if (!verdict.empty()) verdict += "; ";
          verdict += t;
        }
      }
      sqlite3_finalize(raw);
      if (src != SQLITE_DONE) return corrupt(src);
      if (verdict != "ok") {
        return fail(Errc::kFailedPrecondition, "store " + path.string() +
                                                   " is corrupt (quick_check: " + verdict +
                                                   "); refusing to use or overwrite it");
      }
    }
    if (auto r = exec("PRAGMA journal_mode=WAL"); !r) return r;
    if (auto r = exec(options.synchronous == Synchronous::kFull ? "PRAGMA synchronous=FULL"
                                                                : "PRAGMA synchronous=NORMAL");
        !r) {
      return r;
    }
    if (auto r = exec("PRAGMA foreign_keys=ON"); !r) return r;
    // Checkpoints (copying the WAL into the database, with an fsync) take milliseconds; they run
    // on the checkpointer thread's own connection instead of inside a writer's commit.
    if (auto r = exec("PRAGMA wal_autocheckpoint=0"); !r) return r;
    return migrate();
  }

  Error corrupt(int rc) const {
    const int primary = rc & 0xff;
    if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
      return fail(Errc::kFailedPrecondition,
                  "store " + path.string() + " is not a usable SQLite database (" +
                      sqlite3_errmsg(db) + "); refusing to use or overwrite it");
    }
    return sql_error("integrity check", rc);
  }

  Result<int> read_version() {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &raw, nullptr);
    if (rc != SQLITE_OK) return sql_error("read schema version", rc);
    int version = 0;
    rc = sqlite3_step(raw);
    if (rc == SQLITE_ROW) version = sqlite3_column_int(raw, 0);
    sqlite3_finalize(raw);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sql_error("read schema version", rc);
    return version;
  }

  Result<void> migrate() {
    Txn txn(*this);
    if (auto r = txn.begin(); !r) return r;
    if (auto r = exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"); !r) {
      return r;
    }
    auto version = read_version();
    if (!version) return version.error();
    if (*version > Store::kSchemaVersion) {
      return fail(Errc::kFailedPrecondition,
                  "store " + path.string() + " has schema version " + std::to_string(*version) +
                      ", newer than this comfyfarm knows (" +
                      std::to_string(Store::kSchemaVersion) +
                      "); use a newer comfyfarm, the file was left unchanged");
    }
    for (int v = *version; v < Store::kSchemaVersion; ++v) {
      if (auto r = exec(kMigrations[static_cast<std::size_t>(v)]); !r) return r;
    }
    if (*version < Store::kSchemaVersion) {
      if (auto r = exec("DELETE FROM schema_version"); !r) return r;
      if (auto r = exec("INSERT INTO schema_version VALUES (" +
                        std::to_string(Store::kSchemaVersion) + ")");
          !r) {
        return r;
      }
    }
    return txn.commit();
  }

  // --- jobs ---------------------------------------------------------------------------------

  // Inserts one job inside the caller's transaction. `known` holds workflow hashes already
  // written in this transaction (skips re-inserting identical workflows).
  Result<void> insert_one(const NewJob& job, std::unordered_set<std::string>* known) {
    if (job.id.empty()) return fail(Errc::kInvalidArgument, "job id is empty");
    const std::string wf = boost::json::serialize(job.workflow);
    const std::string hash = content_hash(wf);
    if (known == nullptr || known->find(hash) == known->end()) {
      auto st = prepare("INSERT OR IGNORE INTO workflows(content_hash, json) VALUES (?1, ?2)");
      if (!st) return st.error();
      Stmt s(*st);
      s.text(1, hash);
      s.text(2, wf);
      if (const int rc = s.step(); rc != SQLITE_DONE) return sql_error("insert workflow", rc);
      if (known != nullptr) known->insert(hash);
    }
    auto st = prepare(
        "INSERT INTO jobs(id, workflow_hash, client_id, priority, batch_id, state, "
        "max_attempts, created_at, updated_at, metadata, extra_data, number, front) "
        "VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?7, ?8, ?9, ?10, ?11)");
    if (!st) return st.error();
    Stmt s(*st);
    const std::string metadata = json_text(job.metadata);
    const std::string extra = json_text(job.extra_data);
    s.text(1, job.id);
    s.text(2, hash);
    s.text(3, job.client_id);
    s.i64(4, job.priority);
    s.text(5, job.batch_id);
    s.i64(6, job.max_attempts);
    s.i64(7, job.created_at);
    s.text_or_null(8, metadata);
    s.text_or_null(9, extra);
    s.i64(10, job.number);
    s.i64(11, job.front ? 1 : 0);
    const int rc = s.step();
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return fail(Errc::kAlreadyExists, "job " + job.id + " already exists");
    }
    if (rc != SQLITE_DONE) return sql_error("insert job " + job.id, rc);
    return {};
  }

  static JobRecord read_job(const Stmt& s) {
    JobRecord j;
    j.seq = s.col_i64(0);
    j.id = s.col_text(1);
    j.workflow_hash = s.col_text(2);
    j.workflow = s.col_json(3);
    j.client_id = s.col_text(4);
    j.priority = static_cast<int>(s.col_i64(5));
    j.batch_id = s.col_text(6);
    j.state = parse_job_state(s.col_text(7)).value_or(JobState::kQueued);
    j.attempts = static_cast<int>(s.col_i64(8));
    j.retry_count = static_cast<int>(s.col_i64(9));
    j.max_attempts = static_cast<int>(s.col_i64(10));
    j.backend_id = s.col_text(11);
    j.created_at = s.col_i64(12);
    j.updated_at = s.col_i64(13);
    if (!s.col_null(14)) j.last_attempted_at = s.col_i64(14);
    j.last_error = s.col_json(15);
    j.needs_regeneration = s.col_i64(16) != 0;
    j.metadata = s.col_json(17);
    j.extra_data = s.col_json(18);
    j.number = s.col_i64(19);
    j.front = s.col_i64(20) != 0;
    return j;
  }

  Result<std::vector<JobRecord>> read_jobs(Stmt& s, std::string_view what) {
    std::vector<JobRecord> out;
    int rc = 0;
    while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_job(s));
    if (rc != SQLITE_DONE) return sql_error(what, rc);
    return out;
  }

  Result<bool> job_exists(std::string_view id) {
    auto st = prepare("SELECT 1 FROM jobs WHERE id = ?1");
    if (!st) return st.error();
    Stmt s(*st);
    s.text(1, id);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sql_error("find job", rc);
  }

  Result<void> require_job(std::string_view id) {
    auto e = job_exists(id);
    if (!e) return e.error();
    if (!*e) return fail(Errc::kNotFound, "no job " + std::string(id));
    return {};
  }

  // One JSON document per job (profiles, results). `sql` must be a literal: the statement
  // cache is keyed by its text.
  Result<void> put_job_json(std::string_view sql, std::string_view what, std::string_view id,
                            const boost::json::value& v) {
    std::lock_guard lk(db_mu);
    if (auto r = require_job(id); !r) return r;
    auto st = prepare(sql);
    if (!st) return st.error();
    Stmt s(*st);
    const std::string text = boost::json::serialize(v);
    s.text(1, id);
    s.text(2, text);
    if (const int rc = s.step(); rc != SQLITE_DONE) return sql_error("set " + std::string(what), rc);
    return {};
  }

  Result<boost::json::value> get_job_json(std::string_view sql, std::string_view what, std::string_view id) {
    std::lock_guard lk(db_mu);
    auto st = prepare(sql);
    if (!st) return st.error();
    Stmt s(*st);
    s.text(1, id);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return s.col_json(0);
    if (rc == SQLITE_DONE) return fail(Errc::kNotFound, "no " + std::string(what) + " for job " + std::string(id));
    return sql_error("get " + std::string(what), rc);
  }


  // --- group commit -------------------------------------------------------------------------

  void run_committer() {
    std::vector<Pending> batch;
    for (;;) {
      {
        std::unique_lock lk(q_mu);
        q_cv.wait(lk, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping and drained
        const std::size_t n = std::min(queue.size(), options.max_group_size);
        batch.clear();
        batch.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      commit_group(batch);
    }
  }

  void commit_group(std::vector<Pending>& batch) {
    std::vector<Result<void>> results(batch.size());
    Result<void> outcome;
    {
      std::lock_guard lk(db_mu);
      Txn txn(*this);
      outcome = txn.begin();
      if (outcome) {
        std::unordered_set<std::string> known;
        // A failed INSERT undoes only its own statement; the others stay in the transaction.
        for (std::size_t i = 0; i < batch.size(); ++i) {
          results[i] = insert_one(batch[i].job, &known);
        }
        outcome = txn.commit();
      }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i].done(outcome ? std::move(results[i]) : Result<void>(outcome.error()));
    }
  }
};

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& path,
                                                       const StoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  if (impl->options.max_group_size == 0) impl->options.max_group_size = 1;
  if (auto r = impl->open_db(); !r) return r.error();
  Impl* raw = impl.get();
  impl->committer = std::thread([raw] { raw->run_committer(); });
  impl->checkpointer = std::thread([raw] { raw->run_checkpointer(); });
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

Result<int> SqliteStore::schema_version() {
  std::lock_guard lk(impl_->db_mu);
  return impl_->read_version();
}

Result<void> SqliteStore::insert_job(const NewJob& job) {
  std::lock_guard lk(impl_->db_mu);
  Impl::Txn txn(*impl_);
  if (auto r = txn.begin(); !r) return r;
  if (auto r = impl_->insert_one(job, nullptr); !r) return r;
  return txn.commit();
}

Result<void> SqliteStore::insert_jobs(const std::vector<NewJob>& jobs) {
  std::lock_guard lk(impl_->db_mu);
  Impl::Txn txn(*impl_);
  if (auto r = txn.begin(); !r) return r;
  std::unordered_set<std::string> known;
  for (const auto& job : jobs) {
    if (auto r = impl_->insert_one(job, &known); !r) return r;
  }
  return txn.commit();
}

std::future<Result<void>> SqliteStore::submit(NewJob job) {
  auto promise = std::make_shared<std::promise<Result<void>>>();
  auto fut = promise->get_future();
  submit(std::move(job), [promise](Result<void> r) { promise->set_value(std::move(r)); });
  return fut;
}

void SqliteStore::submit(NewJob job, std::function<void(Result<void>)> done) {
  {
    std::unique_lock lk(impl_->q_mu);
    if (impl_->stopping) {
      lk.unlock();
      done(fail(Errc::kCancelled, "store is closing"));
      return;
    }
    if (impl_->queue.size() >= impl_->options.submit_queue_limit) {
      lk.unlock();
      done(fail(Errc::kResourceExhausted, "store submit queue is full (" +
                                              std::to_string(impl_->options.submit_queue_limit) +
                                              " pending)"));
      return;
    }
    impl_->queue.push_back(Impl::Pending{std::move(job), std::move(done)});
  }
  impl_->q_cv.notify_one();
}

Result<JobRecord> SqliteStore::get_job(std::string_view id) {
  static const std::string sql = "SELECT " + std::string(kJobColumns) + " WHERE j.id = ?1";
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare(sql);
  if (!st) return st.error();
  Impl::Stmt s(*st);
  s.text(1, id);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return Impl::read_job(s);
  if (rc == SQLITE_DONE) return fail(Errc::kNotFound, "no job " + std::string(id));
  return impl_->sql_error("get job", rc);
}

Result<JobPage> SqliteStore::list_jobs(const JobFilter& filter) {
  static const std::string sql =
      "SELECT " + std::string(kJobColumns) +
      " WHERE j.seq > ?1 AND (?2 IS NULL OR j.state = ?2) AND (?3 IS NULL OR j.batch_id = ?3)"
      " AND (?4 IS NULL OR j.client_id = ?4) ORDER BY j.seq LIMIT ?5";
  const std::size_t limit = filter.limit == 0 ? 1 : filter.limit;
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare(sql);
  if (!st) return st.error();
  Impl::Stmt s(*st);
  s.i64(1, filter.after_seq);
  if (filter.state) s.text(2, to_string(*filter.state));
  if (filter.batch_id) s.text(3, *filter.batch_id);
  if (filter.client_id) s.text(4, *filter.client_id);
  s.i64(5, static_cast<std::int64_t>(limit));
  auto jobs = impl_->read_jobs(s, "list jobs");
  if (!jobs) return jobs.error();
  JobPage page;
  page.jobs = std::move(*jobs);
  if (page.jobs.size() == limit) page.next_after_seq = page.jobs.back().seq;
  return page;
}

Result<std::vector<JobRecord>> SqliteStore::unfinished_jobs() {
  static const std::string sql = "SELECT " + std::string(kJobColumns) +
                                 " WHERE j.state IN ('queued','dispatched','running')"
                                 " ORDER BY j.seq";
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare(sql);
  if (!st) return st.error();
  Impl::Stmt s(*st);
  return impl_->read_jobs(s, "unfinished jobs");
}

Result<void> SqliteStore::transition(std::string_view id, JobState from, JobState to,
                                     std::int64_t at, const TransitionFields& fields) {
  std::lock_guard lk(impl_->db_mu);
  Impl::Txn txn(*impl_);
  if (auto r = txn.begin(); !r) return r;
  {
    auto st = impl_->prepare(
        "UPDATE jobs SET state = ?3, updated_at = ?4,"
        " backend_id = coalesce(?5, backend_id),"
        " last_error = CASE WHEN ?6 THEN ?7 ELSE last_error END,"
        " needs_regeneration = coalesce(?8, needs_regeneration),"
        " attempts = coalesce(?9, attempts),"
        " retry_count = coalesce(?10, retry_count),"
        " last_attempted_at = coalesce(?11, last_attempted_at),"
        " max_attempts = coalesce(?12, max_attempts)"
        " WHERE id = ?1 AND state = ?2");
    if (!st) return st.error();
    Impl::Stmt s(*st);
    const std::string err = fields.last_error ? json_text(*fields.last_error) : std::string();
    s.text(1, id);
    s.text(2, to_string(from));
    s.text(3, to_string(to));
    s.i64(4, at);
    if (fields.backend_id) s.text(5, *fields.backend_id);
    s.i64(6, fields.last_error ? 1 : 0);
    s.text_or_null(7, err);
    if (fields.needs_regeneration) s.i64(8, *fields.needs_regeneration ? 1 : 0);
    if (fields.attempts) s.i64(9, *fields.attempts);
    if (fields.retry_count) s.i64(10, *fields.retry_count);
    s.opt_i64(11, fields.last_attempted_at);
    if (fields.max_attempts) s.i64(12, *fields.max_attempts);
    if (const int rc = s.step(); rc != SQLITE_DONE) return impl_->sql_error("transition", rc);
  }
  if (sqlite3_changes(impl_->db) == 0) {
    auto st = impl_->prepare("SELECT state FROM jobs WHERE id = ?1");
    if (!st) return st.error();
    Impl::Stmt s(*st);
    s.text(1, id);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return fail(Errc::kNotFound, "no job " + std::string(id));
    if (rc != SQLITE_ROW) return impl_->sql_error("transition", rc);
    return fail(Errc::kFailedPrecondition, "job " + std::string(id) + " is " + s.col_text(0) +
                                               ", not " + std::string(to_string(from)));
  }
  {
    auto st = impl_->prepare(
        "INSERT INTO job_transitions(job_id, from_state, to_state, at) VALUES (?1, ?2, ?3, ?4)");
    if (!st) return st.error();
    Impl::Stmt s(*st);
    s.text(1, id);
    s.text(2, to_string(from));
    s.text(3, to_string(to));
    s.i64(4, at);
    if (const int rc = s.step(); rc != SQLITE_DONE) {
      return impl_->sql_error("record transition", rc);
    }
  }
  return txn.commit();
}

Result<std::vector<TransitionRecord>> SqliteStore::transitions(std::string_view id) {
  std::lock_guard lk(impl_->db_mu);
  if (auto r = impl_->require_job(id); !r) return r.error();
  auto st = impl_->prepare(
      "SELECT from_state, to_state, at FROM job_transitions WHERE job_id = ?1 ORDER BY seq");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  s.text(1, id);
  std::vector<TransitionRecord> out;
  int rc = 0;
  while ((rc = s.step()) == SQLITE_ROW) {
    TransitionRecord t;
    t.job_id = std::string(id);
    t.from = parse_job_state(s.col_text(0)).value_or(JobState::kQueued);
    t.to = parse_job_state(s.col_text(1)).value_or(JobState::kQueued);
    t.at = s.col_i64(2);
    out.push_back(std::move(t));
  }
  if (rc != SQLITE_DONE) return impl_->sql_error("transitions", rc);
  return out;
}

Result<void> SqliteStore::record_attempt(const AttemptRecord& a) {
  std::lock_guard lk(impl_->db_mu);
  Impl::Txn txn(*impl_);
  if (auto r = txn.begin(); !r) return r;
  if (auto r = impl_->require_job(a.job_id); !r) return r;
  {
    auto st = impl_->prepare(
        "INSERT INTO job_attempts(job_id, attempt, backend_id, started_at, ended_at, outcome, "
        "error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(job_id, attempt) DO UPDATE SET "
        "backend_id = excluded.backend_id, started_at = excluded.started_at, "
        "ended_at = excluded.ended_at, outcome = excluded.outcome, error = excluded.error");
    if (!st) return st.error();
    Impl::Stmt s(*st);
    const std::string err = json_text(a.error);
    s.text(1, a.job_id);
    s.i64(2, a.attempt);
    s.text(3, a.backend_id);
    s.i64(4, a.started_at);
    s.opt_i64(5, a.ended_at);
    s.text(6, a.outcome);
    s.text_or_null(7, err);
    if (const int rc = s.step(); rc != SQLITE_DONE) return impl_->sql_error("record attempt", rc);
  }
  {
    auto st = impl_->prepare(
        "UPDATE jobs SET attempts = max(attempts, ?2),"
        " last_attempted_at = max(coalesce(last_attempted_at, ?3), ?3) WHERE id = ?1");
    if (!st) return st.error();
    Impl::Stmt s(*st);
    s.text(1, a.job_id);
    s.i64(2, a.attempt);
    s.i64(3, a.started_at);
    if (const int rc = s.step(); rc != SQLITE_DONE) return impl_->sql_error("record attempt", rc);
  }
  return txn.commit();
}

Result<std::vector<AttemptRecord>> SqliteStore::attempts(std::string_view id) {
  std::lock_guard lk(impl_->db_mu);
  if (auto r = impl_->require_job(id); !r) return r.error();
  auto st = impl_->prepare(
      "SELECT attempt, backend_id, started_at, ended_at, outcome, error FROM job_attempts "
      "WHERE job_id = ?1 ORDER BY attempt");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  s.text(1, id);
  std::vector<AttemptRecord> out;
  int rc = 0;
  while ((rc = s.step()) == SQLITE_ROW) {
    AttemptRecord a;
    a.job_id = std::string(id);
    a.attempt = static_cast<int>(s.col_i64(0));
    a.backend_id = s.col_text(1);
    a.started_at = s.col_i64(2);
    if (!s.col_null(3)) a.ended_at = s.col_i64(3);
    a.outcome = s.col_text(4);
    a.error = s.col_json(5);
    out.push_back(std::move(a));
  }
  if (rc != SQLITE_DONE) return impl_->sql_error("attempts", rc);
  return out;
}

Result<void> SqliteStore::add_outputs(std::string_view id, const std::vector<OutputRecord>& outs) {
  std::lock_guard lk(impl_->db_mu);
  Impl::Txn txn(*impl_);
  if (auto r = txn.begin(); !r) return r;
  if (auto r = impl_->require_job(id); !r) return r;
  for (const auto& o : outs) {
    auto st = impl_->prepare(
        "INSERT INTO outputs(job_id, node_id, filename, subfolder, type, backend_id) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!st) return st.error();
    Impl::Stmt s(*st);
    s.text(1, id);
    s.text(2, o.node_id);
    s.text(3, o.filename);
    s.text(4, o.subfolder);
    s.text(5, o.type);
    s.text(6, o.backend_id);
    if (const int rc = s.step(); rc != SQLITE_DONE) return impl_->sql_error("add output", rc);
  }
  return txn.commit();
}

Result<std::vector<OutputRecord>> SqliteStore::outputs(std::string_view id) {
  std::lock_guard lk(impl_->db_mu);
  if (auto r = impl_->require_job(id); !r) return r.error();
  auto st = impl_->prepare(
      "SELECT node_id, filename, subfolder, type, backend_id FROM outputs WHERE job_id = ?1 "
      "ORDER BY seq");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  s.text(1, id);
  std::vector<OutputRecord> out;
  int rc = 0;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.push_back({s.col_text(0), s.col_text(1), s.col_text(2), s.col_text(3), s.col_text(4)});
  }
  if (rc != SQLITE_DONE) return impl_->sql_error("outputs", rc);
  return out;
}

Result<void> SqliteStore::set_profile(std::string_view id, const boost::json::value& profile) {
  return impl_->put_job_json(
      "INSERT INTO profiles(job_id, json) VALUES (?1, ?2) "
      "ON CONFLICT(job_id) DO UPDATE SET json = excluded.json",
      "profile", id, profile);
}

Result<boost::json::value> SqliteStore::get_profile(std::string_view id) {
  return impl_->get_job_json("SELECT json FROM profiles WHERE job_id = ?1", "profile", id);
}

Result<void> SqliteStore::set_result(std::string_view id, const boost::json::value& result) {
  return impl_->put_job_json(
      "INSERT INTO job_results(job_id, json) VALUES (?1, ?2) "
      "ON CONFLICT(job_id) DO UPDATE SET json = excluded.json",
      "result", id, result);
}

Result<boost::json::value> SqliteStore::get_result(std::string_view id) {
  return impl_->get_job_json("SELECT json FROM job_results WHERE job_id = ?1", "result", id);
}

Result<std::int64_t> SqliteStore::max_number() {
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare("SELECT coalesce(max(number), -1) FROM jobs");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  if (const int rc = s.step(); rc != SQLITE_ROW) return impl_->sql_error("max number", rc);
  return s.col_i64(0);
}

Result<std::vector<std::pair<std::string, boost::json::value>>> SqliteStore::recent_results(
    std::size_t limit) {
  std::lock_guard lk(impl_->db_mu);
  // The newest `limit` by the time the job last changed (when it ended), returned oldest first.
  auto st = impl_->prepare(
      "SELECT id, json FROM (SELECT j.id AS id, r.json AS json, j.updated_at AS at, j.seq AS seq "
      "FROM job_results r JOIN jobs j ON j.id = r.job_id "
      "WHERE j.state IN ('succeeded','failed','cancelled') "
      "ORDER BY j.updated_at DESC, j.seq DESC LIMIT ?1) ORDER BY at, seq");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  s.i64(1, static_cast<std::int64_t>(limit));
  std::vector<std::pair<std::string, boost::json::value>> out;
  int rc = 0;
  while ((rc = s.step()) == SQLITE_ROW) out.emplace_back(s.col_text(0), s.col_json(1));
  if (rc != SQLITE_DONE) return impl_->sql_error("recent results", rc);
  return out;
}

Result<void> SqliteStore::add_backend(const BackendRecord& b) {
  if (b.id.empty()) return fail(Errc::kInvalidArgument, "backend id is empty");
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare(
      "INSERT INTO backends(id, url, state, drained, added_at, settings) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  const std::string settings = json_text(b.settings);
  s.text(1, b.id);
  s.text(2, b.url);
  s.text(3, b.state);
  s.i64(4, b.drained ? 1 : 0);
  s.i64(5, b.added_at);
  s.text_or_null(6, settings);
  const int rc = s.step();
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
    return fail(Errc::kAlreadyExists, "backend " + b.id + " already exists");
  }
  if (rc != SQLITE_DONE) return impl_->sql_error("add backend", rc);
  return {};
}

Result<void> SqliteStore::update_backend(const BackendRecord& b) {
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare(
      "UPDATE backends SET url = ?2, state = ?3, drained = ?4, added_at = ?5, settings = ?6 "
      "WHERE id = ?1");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  const std::string settings = json_text(b.settings);
  s.text(1, b.id);
  s.text(2, b.url);
  s.text(3, b.state);
  s.i64(4, b.drained ? 1 : 0);
  s.i64(5, b.added_at);
  s.text_or_null(6, settings);
  if (const int rc = s.step(); rc != SQLITE_DONE) return impl_->sql_error("update backend", rc);
  if (sqlite3_changes(impl_->db) == 0) return fail(Errc::kNotFound, "no backend " + b.id);
  return {};
}

namespace {
BackendRecord read_backend(const SqliteStore::Impl::Stmt& s) {
  BackendRecord b;
  b.id = s.col_text(0);
  b.url = s.col_text(1);
  b.state = s.col_text(2);
  b.drained = s.col_i64(3) != 0;
  b.added_at = s.col_i64(4);
  b.settings = s.col_json(5);
  return b;
}
}  // namespace

Result<BackendRecord> SqliteStore::get_backend(std::string_view id) {
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare(
      "SELECT id, url, state, drained, added_at, settings FROM backends WHERE id = ?1");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  s.text(1, id);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return read_backend(s);
  if (rc == SQLITE_DONE) return fail(Errc::kNotFound, "no backend " + std::string(id));
  return impl_->sql_error("get backend", rc);
}

Result<std::vector<BackendRecord>> SqliteStore::list_backends() {
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare(
      "SELECT id, url, state, drained, added_at, settings FROM backends ORDER BY added_at, id");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  std::vector<BackendRecord> out;
  int rc = 0;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_backend(s));
  if (rc != SQLITE_DONE) return impl_->sql_error("list backends", rc);
  return out;
}

Result<void> SqliteStore::remove_backend(std::string_view id) {
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare("DELETE FROM backends WHERE id = ?1");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  s.text(1, id);
  if (const int rc = s.step(); rc != SQLITE_DONE) return impl_->sql_error("remove backend", rc);
  if (sqlite3_changes(impl_->db) == 0)
    return fail(Errc::kNotFound, "no backend " + std::string(id));
  return {};
}

Result<std::int64_t> SqliteStore::workflow_count() {
  std::lock_guard lk(impl_->db_mu);
  auto st = impl_->prepare("SELECT count(*) FROM workflows");
  if (!st) return st.error();
  Impl::Stmt s(*st);
  if (const int rc = s.step(); rc != SQLITE_ROW) return impl_->sql_error("count workflows", rc);
  return s.col_i64(0);
}

}  // namespace comfyfarm::store
