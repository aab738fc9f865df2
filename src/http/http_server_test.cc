// http::Server over real loopback sockets: routing and errors, keep-alive, the limits
// (connections, header and body size, timeouts), streams, and noticing a client that
// went away (reset, close, not reading) as opposed to one that half-closed.
#include "http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace strata::http {
namespace {

using std::chrono::milliseconds;

// A raw client socket: what a misbehaving client does is the point of these tests.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return ok_; }
  int fd() const { return fd_; }

  void Send(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<size_t>(n));
    }
  }
  void HalfClose() { shutdown(fd_, SHUT_WR); }
  void Reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd_);
    fd_ = -1;
  }
  void Close() {
    close(fd_);
    fd_ = -1;
  }

  // Reads until `until` is in what was read, the peer closes, or `timeout` passes.
  std::string ReadUntil(std::string_view until, milliseconds timeout = milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (buffer_.find(until) == std::string::npos && !closed_ &&
           std::chrono::steady_clock::now() < deadline)
      Fill(deadline);
    const size_t at = buffer_.find(until);
    const size_t end = at == std::string::npos ? buffer_.size() : at + until.size();
    std::string out = buffer_.substr(0, end);
    buffer_.erase(0, end);
    return out;
  }
  // `n` bytes (fewer if the peer closes or `timeout` passes).
  std::string ReadBytes(size_t n, milliseconds timeout = milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (buffer_.size() < n && !closed_ && std::chrono::steady_clock::now() < deadline)
      Fill(deadline);
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, out.size());
    return out;
  }
  // Everything until the peer closes.
  std::string ReadAll(milliseconds timeout = milliseconds(5000)) {
    return ReadUntil(std::string_view("\0never", 6), timeout);
  }
  bool closed() const { return closed_; }

 private:
  // One read into buffer_, waiting until `deadline` at most.
  void Fill(std::chrono::steady_clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
    char tmp[4096];
    const ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0)
      closed_ = true;
    else
      buffer_.append(tmp, static_cast<size_t>(n));
  }

  int fd_ = -1;
  bool ok_ = false;
  bool closed_ = false;
  std::string buffer_;
};

// One response with a Content-Length body.
std::string ReadResponse(Client& c) {
  std::string head = c.ReadUntil("\r\n\r\n");
  const size_t at = head.find("Content-Length: ");
  if (at == std::string::npos) return head;
  return head + c.ReadBytes(std::stoul(head.substr(at + 16)));
}

std::string Get(std::string_view path, std::string_view extra = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n" + std::string(extra) + "\r\n";
}

std::string Post(std::string_view path, std::string_view body, std::string_view extra = "") {
  return "POST " + std::string(path) +
         " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra) + "\r\n" + std::string(body);
}

// A handler that keeps its exchange and reports OnGone.
struct Pending {
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<Exchange> exchange;
  bool gone = false;

  Handler Keep(std::optional<Probe> probe = std::nullopt) {
    return [this, probe](Request&, std::shared_ptr<Exchange> x) {
      x->OnGone([this] {
        std::lock_guard lock(mu);
        gone = true;
        cv.notify_all();
      });
      if (probe) x->SetProbe(*probe);
      std::lock_guard lock(mu);
      exchange = std::move(x);
      cv.notify_all();
    };
  }
  std::shared_ptr<Exchange> WaitExchange() {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(5), [&] { return exchange != nullptr; });
    return exchange;
  }
  bool WaitGone(milliseconds timeout = milliseconds(5000)) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return gone; });
  }
};

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<Route> extra = {}) {
    std::vector<Route> routes = {
        {"GET", "/health",
         [](Request&, std::shared_ptr<Exchange> x) {
           x->Respond({200, "application/json", R"({"status":"ok"})", {}});
         }},
        {"POST", "/echo",
         [](Request& r, std::shared_ptr<Exchange> x) {
           x->Respond({200, "text/plain", r.body, {{"X-Query", r.query}}});
         }},
        {"GET", "/stream",
         [](Request&, std::shared_ptr<Exchange> x) {
           x->BeginStream(200, "text/event-stream");
           for (int i = 0; i < 3; ++i) x->Write("data: " + std::to_string(i) + "\n\n");
           x->End();
         }},
        {"GET", "/throw",
         [](Request&, std::shared_ptr<Exchange>) { throw std::runtime_error("boom"); }},
    };
    for (Route& r : extra) routes.push_back(std::move(r));
    auto s = Server::Start(options_, std::move(routes));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
  }
  uint16_t port() const { return server_->port(); }

  ServerOptions options_;
  std::unique_ptr<Server> server_;
};

TEST_F(HttpServerTest, RoutesErrorsAndKeepAlive) {
  StartServer();
  Client c(port());
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 3; ++i) {  // one connection, three requests
    c.Send(Get("/health"));
    const std::string r = ReadResponse(c);
    EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos) << r;
    EXPECT_NE(r.find("Connection: keep-alive"), std::string::npos) << r;
    EXPECT_NE(r.find(R"({"status":"ok"})"), std::string::npos) << r;
  }
  c.Send(Get("/nope"));
  EXPECT_NE(ReadResponse(c).find("404 Not Found"), std::string::npos);
  c.Send(Post("/health", "x"));
  const std::string r405 = ReadResponse(c);
  EXPECT_NE(r405.find("405 Method Not Allowed"), std::string::npos) << r405;
  EXPECT_NE(r405.find("Allow: GET"), std::string::npos) << r405;
  c.Send(Post("/echo?a=1", "hello"));
  const std::string echo = ReadResponse(c);
  EXPECT_NE(echo.find("X-Query: a=1"), std::string::npos) << echo;
  EXPECT_NE(echo.find("\r\n\r\nhello"), std::string::npos) << echo;
  c.Send(Get("/throw"));
  const std::string r500 = ReadResponse(c);
  EXPECT_NE(r500.find("500 Internal Server Error"), std::string::npos) << r500;
  EXPECT_NE(r500.find("boom"), std::string::npos) << r500;
  // Still serving on the same connection.
  c.Send(Get("/health"));
  EXPECT_NE(ReadResponse(c).find("200 OK"), std::string::npos);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  Client c(port());
  c.Send(Post("/echo", "first") + Post("/echo", "second") +
         Get("/health", "Connection: close\r\n"));
  const std::string all = c.ReadAll();
  const size_t a = all.find("first"), b = all.find("second"), h = all.find("status");
  ASSERT_NE(a, std::string::npos) << all;
  ASSERT_NE(b, std::string::npos) << all;
  ASSERT_NE(h, std::string::npos) << all;
  EXPECT_LT(a, b);
  EXPECT_LT(b, h);
  EXPECT_TRUE(c.closed());
}

TEST_F(HttpServerTest, BadRequestsGetAnErrorAndTheServerGoesOn) {
  options_.max_header_bytes = 2048;
  StartServer();
  {
    Client c(port());
    c.Send("NOT HTTP AT ALL\r\n\r\n");
    const std::string r = c.ReadAll();
    EXPECT_NE(r.find("400 Bad Request"), std::string::npos) << r;
    EXPECT_TRUE(c.closed());
  }
  {
    Client c(port());
    c.Send("GET /health HTTP/1.1\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n");
    const std::string r = c.ReadAll();
    EXPECT_NE(r.find("431"), std::string::npos) << r;
  }
  Client ok(port());
  ok.Send(Get("/health"));
  EXPECT_NE(ReadResponse(ok).find("200 OK"), std::string::npos);
}

TEST_F(HttpServerTest, OversizedBodyIsRefusedBeforeItIsSent) {
  options_.max_body_bytes = 1024;
  StartServer();
  {
    // Content-Length says too much: 413 at once, without waiting for the body.
    Client c(port());
    c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
    const std::string r = c.ReadAll();
    EXPECT_NE(r.find("413"), std::string::npos) << r;
    EXPECT_TRUE(c.closed());
  }
  {
    // A client that sends a too-large body without waiting still reads its 413: the
    // server drains what comes instead of closing on unread bytes (a reset).
    Client c(port());
    std::string request = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n";
    std::thread sender([&] {
      c.Send(request + std::string(3000000, 'q'));
      c.HalfClose();
    });
    const std::string r = c.ReadAll();
    sender.join();
    EXPECT_NE(r.find("HTTP/1.1 413"), std::string::npos) << r.substr(0, 200);
  }
  {
    // Chunked, without a length: 413 once the limit is passed.
    Client c(port());
    std::string chunk(1500, 'x');
    c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n" + chunk +
           "\r\n");
    EXPECT_NE(c.ReadAll().find("413"), std::string::npos);
  }
  {
    // Expect: 100-continue within the limit: told to go on, then answered.
    Client c(port());
    c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    EXPECT_NE(c.ReadUntil("\r\n\r\n").find("100 Continue"), std::string::npos);
    c.Send("abcde");
    const std::string r = ReadResponse(c);
    EXPECT_NE(r.find("200 OK"), std::string::npos) << r;
    EXPECT_NE(r.find("abcde"), std::string::npos) << r;
  }
}

TEST_F(HttpServerTest, BodiesTogetherStayWithinTheirBudget) {
  options_.max_body_bytes = 1 << 20;
  options_.max_buffered_body_bytes = 2 << 20;
  StartServer();
  // Two clients announce 1 MiB bodies and send half: the budget is taken.
  Client a(port()), b(port()), c(port());
  const std::string head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
  a.Send(head + std::string(512 << 10, 'a'));
  b.Send(head + std::string(512 << 10, 'b'));
  std::this_thread::sleep_for(milliseconds(100));
  c.Send(head);
  const std::string refused = c.ReadAll();
  EXPECT_NE(refused.find("503"), std::string::npos) << refused;
  EXPECT_EQ(server_->stats().bodies_refused, 1u);
  // Once a body is handled its budget is back.
  a.Send(std::string(512 << 10, 'a'));
  EXPECT_NE(ReadResponse(a).find("200 OK"), std::string::npos);
  Client d(port());
  d.Send(Post("/echo", std::string(1 << 20, 'd')));
  EXPECT_NE(ReadResponse(d).find("200 OK"), std::string::npos);
}

TEST_F(HttpServerTest, StreamsAreChunkedAndRawForHttp10) {
  StartServer();
  {
    Client c(port());
    c.Send(Get("/stream"));
    const std::string r = c.ReadUntil("0\r\n\r\n");
    EXPECT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos) << r;
    EXPECT_NE(r.find("9\r\ndata: 0\n\n\r\n"), std::string::npos) << r;
    EXPECT_NE(r.find("9\r\ndata: 2\n\n\r\n0\r\n\r\n"), std::string::npos) << r;
    c.Send(Get("/health"));  // the connection stays usable
    EXPECT_NE(ReadResponse(c).find("200 OK"), std::string::npos);
  }
  {
    Client c(port());
    c.Send("GET /stream HTTP/1.0\r\n\r\n");
    const std::string r = c.ReadAll();
    EXPECT_EQ(r.find("chunked"), std::string::npos) << r;
    EXPECT_NE(r.find("Connection: close\r\n\r\ndata: 0\n\ndata: 1\n\ndata: 2\n\n"),
              std::string::npos)
        << r;
    EXPECT_TRUE(c.closed());
  }
}

TEST_F(HttpServerTest, IdleAndSlowClientsHoldNoThread) {
  options_.io_threads = 1;
  options_.header_timeout = milliseconds(60000);
  StartServer();
  std::vector<std::unique_ptr<Client>> hogs;
  for (int i = 0; i < 64; ++i) {
    hogs.push_back(std::make_unique<Client>(port()));
    if (i % 2 == 0) hogs.back()->Send("GET /health HTTP/1.1\r\nHo");  // slowloris
  }
  // With one I/O thread and 64 connections that never finish a request, a new client is
  // still answered.
  Client c(port());
  c.Send(Get("/health"));
  EXPECT_NE(ReadResponse(c).find("200 OK"), std::string::npos);
  EXPECT_EQ(server_->stats().connections_rejected, 0u);
}

TEST_F(HttpServerTest, SlowHeadersAndIdleConnectionsTimeOut) {
  options_.header_timeout = milliseconds(200);
  options_.idle_timeout = milliseconds(300);
  StartServer();
  Client slow(port());
  slow.Send("GET /health HTTP/1.1\r\n");
  for (int i = 0; i < 5; ++i) {  // a byte now and then does not reset the deadline
    std::this_thread::sleep_for(milliseconds(60));
    slow.Send("X");
  }
  const std::string r = slow.ReadAll();
  EXPECT_NE(r.find("408"), std::string::npos) << r;
  EXPECT_TRUE(slow.closed());

  Client idle(port());
  idle.Send(Get("/health"));
  EXPECT_NE(ReadResponse(idle).find("200 OK"), std::string::npos);
  idle.ReadAll();  // the server closes it once idle_timeout passes
  EXPECT_TRUE(idle.closed());
  EXPECT_GE(server_->stats().read_timeouts, 2u);
}

TEST_F(HttpServerTest, ConnectionsOverTheCapGet503) {
  options_.max_connections = 4;
  StartServer();
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<Client>(port()));
    held.back()->Send(Get("/health"));
    ASSERT_NE(ReadResponse(*held.back()).find("200 OK"), std::string::npos);
  }
  Client over(port());
  const std::string r = over.ReadAll();
  EXPECT_NE(r.find("503 Service Unavailable"), std::string::npos) << r;
  EXPECT_NE(r.find("limit"), std::string::npos) << r;
  EXPECT_TRUE(over.closed());
  EXPECT_EQ(server_->stats().connections_rejected, 1u);
  held.pop_back();  // a slot frees up
  std::string ok;
  for (int attempt = 0; attempt < 100 && ok.find("200 OK") == std::string::npos; ++attempt) {
    Client again(port());
    again.Send(Get("/health"));
    ok = ReadResponse(again);
    if (ok.find("200 OK") == std::string::npos) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_NE(ok.find("200 OK"), std::string::npos) << ok;
}

TEST_F(HttpServerTest, ResetClientIsGone) {
  Pending p;
  StartServer({{"POST", "/wait", p.Keep()}});
  Client c(port());
  c.Send(Post("/wait", "{}"));
  ASSERT_NE(p.WaitExchange(), nullptr);
  c.Reset();
  EXPECT_TRUE(p.WaitGone());
  p.exchange->Respond({});  // harmless after the client left
  EXPECT_EQ(server_->stats().clients_gone, 1u);
}

TEST_F(HttpServerTest, ClosedClientWithoutProbeIsGone) {
  Pending p;
  StartServer({{"POST", "/wait", p.Keep()}});
  Client c(port());
  c.Send(Post("/wait", "{}"));
  ASSERT_NE(p.WaitExchange(), nullptr);
  c.Close();
  EXPECT_TRUE(p.WaitGone());
}

TEST_F(HttpServerTest, HalfClosedClientStillGetsItsAnswer) {
  Pending p;
  StartServer({{"POST", "/wait", p.Keep(Probe{200, "application/json", " "})}});
  Client c(port());
  c.Send(Post("/wait", "{}"));
  ASSERT_NE(p.WaitExchange(), nullptr);
  c.HalfClose();
  std::this_thread::sleep_for(milliseconds(350));  // a few probes go out meanwhile
  p.exchange->Respond({200, "application/json", R"({"answer":42})", {}});
  const std::string r = c.ReadAll();
  EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos) << r;
  EXPECT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos) << r;
  EXPECT_NE(r.find("1\r\n \r\n"), std::string::npos) << r;  // filler
  EXPECT_NE(r.find(R"({"answer":42})"), std::string::npos) << r;
  EXPECT_NE(r.find("0\r\n\r\n"), std::string::npos) << r;
  EXPECT_FALSE(p.gone);
  EXPECT_EQ(server_->stats().probes_started, 1u);
}

TEST_F(HttpServerTest, ClosedClientWithProbeIsFoundGoneByTheProbe) {
  Pending p;
  StartServer({{"POST", "/wait", p.Keep(Probe{200, "application/json", " "})}});
  Client c(port());
  c.Send(Post("/wait", "{}"));
  ASSERT_NE(p.WaitExchange(), nullptr);
  c.Close();
  EXPECT_TRUE(p.WaitGone());
  EXPECT_EQ(server_->stats().probes_started, 1u);
}

TEST_F(HttpServerTest, ClientThatDoesNotReadIsGone) {
  options_.write_timeout = milliseconds(300);
  Pending p;
  StartServer({{"GET", "/flood", p.Keep()}});
  Client c(port());
  int small = 4096;
  setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  c.Send(Get("/flood"));
  auto x = p.WaitExchange();
  ASSERT_NE(x, nullptr);
  x->BeginStream(200, "text/plain");
  for (int i = 0; i < 64 && !p.gone; ++i) x->Write(std::string(256 << 10, 'z'));
  EXPECT_TRUE(p.WaitGone());
}

TEST_F(HttpServerTest, AfterRunsOnlyWhileTheResponseIsPending) {
  std::atomic<int> fired{0};
  StartServer({{"GET", "/later", [&](Request&, std::shared_ptr<Exchange> x) {
                  x->After(milliseconds(50), [x, &fired] {
                    fired++;
                    x->Respond({200, "text/plain", "late", {}});
                  });
                  x->After(milliseconds(100), [&fired] { fired += 100; });  // too late
                }}});
  Client c(port());
  c.Send(Get("/later"));
  EXPECT_NE(ReadResponse(c).find("late"), std::string::npos);
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_EQ(fired.load(), 1);
}

TEST_F(HttpServerTest, StopTellsPendingExchangesAndIsIdempotent) {
  Pending p;
  StartServer({{"POST", "/wait", p.Keep()}});
  Client c(port());
  c.Send(Post("/wait", "{}"));
  ASSERT_NE(p.WaitExchange(), nullptr);
  server_->Stop();
  EXPECT_TRUE(p.WaitGone(milliseconds(0)));
  p.exchange->Write("after stop");  // does nothing, crashes nothing
  p.exchange->End();
  server_->Stop();
  c.ReadAll();
  EXPECT_TRUE(c.closed());
}

TEST(HttpServerStartTest, BadOptionsAndBusyPorts) {
  ServerOptions o;
  o.io_threads = 0;
  EXPECT_FALSE(Server::Start(o, {}).ok());
  o = ServerOptions{};
  auto dup = Server::Start(o, {{"GET", "/a", [](Request&, std::shared_ptr<Exchange>) {}},
                               {"GET", "/a", [](Request&, std::shared_ptr<Exchange>) {}}});
  EXPECT_FALSE(dup.ok());
  EXPECT_FALSE(Server::Start(o, {{"GET", "a", [](Request&, std::shared_ptr<Exchange>) {}}}).ok());
  auto first = Server::Start(o, {});
  ASSERT_TRUE(first.ok());
  o.port = (*first)->port();
  auto second = Server::Start(o, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  o.host = "not-an-address.invalid";
  o.port = 0;
  EXPECT_FALSE(Server::Start(o, {}).ok());
}

}  // namespace
}  // namespace strata::http
