// Throwaway redis-server processes for the Redis store's tests and benchmark: a server (or
// a 3-node Redis Cluster, or a TLS server with a fresh CA) on free loopback ports, without
// persistence, in a temporary directory, stopped by PID when the helper is destroyed.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "remote/redis_connection.h"
#include "strata/status.h"

extern char** environ;

namespace strata::redis_test {

// Path of redis-server ("" when not installed): $PATH first, then /usr/bin.
inline std::string RedisServerBinary() {
  if (const char* path = std::getenv("PATH")) {
    std::string dirs = path;
    size_t start = 0;
    while (start <= dirs.size()) {
      const size_t end = std::min(dirs.find(':', start), dirs.size());
      const std::string candidate = dirs.substr(start, end - start) + "/redis-server";
      if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
      start = end + 1;
    }
  }
  return access("/usr/bin/redis-server", X_OK) == 0 ? "/usr/bin/redis-server" : "";
}

// A port nothing listens on right now (the kernel's pick for a socket bound to port 0).
// With `bus` the port + 10000 (a cluster node's bus port) must be free as well.
inline uint16_t FreeLoopbackPort(bool bus = false) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto bind_port = [](uint16_t port) -> uint16_t {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(port);
      socklen_t len = sizeof(addr);
      uint16_t bound = 0;
      if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
        bound = ntohs(addr.sin_port);
      close(fd);
      return bound;
    };
    const uint16_t port = bind_port(0);
    if (port == 0) continue;
    if (!bus) return port;
    if (port <= 55535 && bind_port(static_cast<uint16_t>(port + 10000)) != 0) return port;
  }
  return 0;
}

// Runs `args` on a fresh connection to 127.0.0.1:`port` (admin commands of the tests).
inline Result<remote::RedisReply> AdminCommand(uint16_t port,
                                               std::initializer_list<std::string_view> args,
                                               remote::RedisConnectionOptions options = {}) {
  STRATA_ASSIGN_OR_RETURN(auto conn,
                          remote::RedisConnection::Connect({"127.0.0.1", port}, options));
  return conn->Command(args);
}

// The reply as text: a string, status or error's bytes, an integer's digits, "(nil)".
inline std::string ReplyString(const Result<remote::RedisReply>& reply) {
  if (!reply.ok()) return "(failed: " + reply.status().ToString() + ")";
  const redisReply& r = **reply;
  switch (r.type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return std::string(r.str, r.len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r.integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    default:
      return "(array)";
  }
}

// One redis-server child process.
class RedisServer {
 public:
  RedisServer() = default;
  ~RedisServer() {
    Stop();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts redis-server on 127.0.0.1 with `extra` arguments, on `port` (0: a free one,
  // retried when another process takes it first) and waits until it accepts connections.
  // With `cluster` it is a cluster node (its bus port, port + 10000, must be free too).
  // With `tls_args` non-empty the server listens for TLS only, on the port, with them.
  Status Start(std::vector<std::string> extra = {}, uint16_t port = 0, bool cluster = false,
               std::vector<std::string> tls_args = {}) {
    const std::string binary = RedisServerBinary();
    if (binary.empty()) return Status::NotSupported("redis-server is not installed");
    if (dir_.empty()) {
      char tmpl[] = "/tmp/strata-redis-XXXXXX";
      if (!mkdtemp(tmpl)) return Status::IoError("mkdtemp", errno);
      dir_ = tmpl;
    }
    extra_ = std::move(extra);
    cluster_ = cluster;
    tls_args_ = std::move(tls_args);
    const bool pick = port == 0;
    Status last;
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = pick ? FreeLoopbackPort(cluster) : port;
      last = Launch(binary);
      if (last.ok() || !pick) return last;
    }
    return last;
  }

  // Starts the server again on the same port and with the same arguments (after Kill).
  Status Restart() {
    Stop();
    return Launch(RedisServerBinary());
  }

  // Sends `sig` and reaps the process.
  void Kill(int sig = SIGKILL) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Sends `sig` without waiting (SIGSTOP / SIGCONT: a hung server).
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }

  // SIGTERM, then SIGKILL when it has not exited within 3 s.
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);  // in case a test left it stopped
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Kill(SIGKILL);
  }

  uint16_t port() const { return port_; }
  std::string endpoint() const { return fmt::format("127.0.0.1:{}", port_); }
  const std::string& dir() const { return dir_; }
  bool running() const { return pid_ > 0; }

 private:
  Status Launch(const std::string& binary) {
    std::vector<std::string> args = {binary,
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     dir_,
                                     "--logfile",
                                     fmt::format("{}/redis-{}.log", dir_, port_),
                                     "--daemonize",
                                     "no"};
    if (tls_args_.empty()) {
      args.insert(args.end(), {"--port", std::to_string(port_)});
    } else {
      args.insert(args.end(), {"--port", "0", "--tls-port", std::to_string(port_)});
      args.insert(args.end(), tls_args_.begin(), tls_args_.end());
    }
    if (cluster_)
      args.insert(args.end(),
                  {"--cluster-enabled", "yes", "--cluster-config-file",
                   fmt::format("{}/nodes-{}.conf", dir_, port_), "--cluster-node-timeout", "1000"});
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    // fork + exec rather than posix_spawn for PR_SET_PDEATHSIG: a test process that crashes
    // or is killed takes its servers with it instead of leaving them running. Between fork
    // and exec only async-signal-safe calls.
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) return Status::IoError("fork for " + binary, errno);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
      const int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) {
        dup2(devnull, 1);
        dup2(devnull, 2);
      }
      execve(binary.c_str(), argv.data(), environ);
      _exit(127);
    }
    pid_ = pid;

    // Ready when it accepts a TCP connection; gone when it exits (port taken, bad args).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return Status::Unavailable(
            fmt::format("redis-server on port {} exited at start (see {})", port_, dir_));
      }
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(port_);
      const bool up = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
      close(fd);
      if (up) return Status::Ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Kill();
    return Status::TimedOut(fmt::format("redis-server on port {} did not start in 10 s", port_));
  }

  std::string dir_;
  std::vector<std::string> extra_;
  std::vector<std::string> tls_args_;
  bool cluster_ = false;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// A Redis Cluster of `n` masters without replicas on loopback, slots split evenly.
class RedisClusterForTest {
 public:
  Status Start(int n = 3) {
    for (int i = 0; i < n; ++i) {
      nodes_.push_back(std::make_unique<RedisServer>());
      STRATA_RETURN_IF_ERROR(nodes_.back()->Start({}, 0, /*cluster=*/true));
    }
    // Assign slot ranges, then introduce every node to the first; gossip does the rest.
    for (int i = 0; i < n; ++i) {
      const uint32_t first = remote::kRedisClusterSlots * i / n;
      const uint32_t last = remote::kRedisClusterSlots * (i + 1) / n - 1;
      Result<remote::RedisReply> r = AdminCommand(
          port(i), {"CLUSTER", "ADDSLOTSRANGE", std::to_string(first), std::to_string(last)});
      if (ReplyString(r) != "OK")
        return Status::Internal("CLUSTER ADDSLOTSRANGE on " + endpoint(i) + ": " + ReplyString(r));
    }
    for (int i = 1; i < n; ++i) {
      Result<remote::RedisReply> r =
          AdminCommand(port(0), {"CLUSTER", "MEET", "127.0.0.1", std::to_string(port(i))});
      if (ReplyString(r) != "OK")
        return Status::Internal("CLUSTER MEET " + endpoint(i) + ": " + ReplyString(r));
    }
    return WaitUntilOk();
  }

  // Waits until every running node reports cluster_state:ok with every slot assigned and
  // every node known.
  Status WaitUntilOk(std::chrono::seconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string info;
    while (std::chrono::steady_clock::now() < deadline) {
      bool all = true;
      for (size_t i = 0; i < nodes_.size() && all; ++i) {
        if (!nodes_[i]->running()) continue;
        info = ReplyString(AdminCommand(port(i), {"CLUSTER", "INFO"}));
        all = info.find("cluster_state:ok") != std::string::npos &&
              info.find("cluster_slots_assigned:16384") != std::string::npos &&
              info.find(fmt::format("cluster_known_nodes:{}", nodes_.size())) != std::string::npos;
      }
      if (all) return Status::Ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Status::TimedOut("redis cluster did not become ok: " + info);
  }

  size_t size() const { return nodes_.size(); }
  RedisServer& node(size_t i) { return *nodes_[i]; }
  uint16_t port(size_t i) const { return nodes_[i]->port(); }
  std::string endpoint(size_t i) const { return nodes_[i]->endpoint(); }
  std::string NodeId(size_t i) const {
    return ReplyString(AdminCommand(port(i), {"CLUSTER", "MYID"}));
  }
  // Index of the node serving `slot` according to node 0's view, or -1.
  int NodeOfSlot(uint16_t slot) const {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const uint32_t first = remote::kRedisClusterSlots * i / nodes_.size();
      const uint32_t last = remote::kRedisClusterSlots * (i + 1) / nodes_.size() - 1;
      if (slot >= first && slot <= last) return static_cast<int>(i);
    }
    return -1;
  }

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

// A throwaway CA with a server certificate for 127.0.0.1 / localhost and a client
// certificate, made with the openssl command line in a temporary directory.
class TestCertificates {
 public:
  ~TestCertificates() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  Status Create() {
    char tmpl[] = "/tmp/strata-redis-tls-XXXXXX";
    if (!mkdtemp(tmpl)) return Status::IoError("mkdtemp", errno);
    dir_ = tmpl;
    std::ofstream(dir_ + "/server.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    std::ofstream(dir_ + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script = fmt::format(
        "set -e; cd '{0}';"
        "openssl req -x509 {1} -keyout ca.key -out ca.crt -days 2 -subj '/CN=Strata test CA';"
        "openssl req {1} -keyout other-ca.key -out other-ca.crt -x509 -days 2 "
        "  -subj '/CN=Another CA';"
        "for who in server client; do "
        "  openssl req {1} -keyout $who.key -out $who.csr -subj \"/CN=$who\";"
        "  openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "    -out $who.crt -days 2 -extfile $who.ext;"
        "done",
        dir_, key);
    const std::string command =
        "sh -c \"" + Escape(script) + "\" > '" + dir_ + "/openssl.log' 2>&1";
    if (std::system(command.c_str()) != 0)
      return Status::Internal("openssl failed to make test certificates; see " + dir_ +
                              "/openssl.log");
    return Status::Ok();
  }
  std::string path(std::string_view file) const { return dir_ + "/" + std::string(file); }

 private:
  static std::string Escape(const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '"' || c == '\\' || c == '$' || c == '`') out.push_back('\\');
      out.push_back(c);
    }
    return out;
  }
  std::string dir_;
};

}  // namespace strata::redis_test
