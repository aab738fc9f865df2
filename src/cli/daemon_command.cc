// `strata daemon` (see daemon_command.h).
#include "cli/daemon_command.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/daemon_server.h"
#include "engine/model_config.h"
#include "metrics/metrics_server.h"
#include "metrics/strata_metrics.h"
#include "tier/host_tier.h"

namespace strata::cli {
namespace {

// The daemon's own series beside the tier metrics: its sessions and what it refused.
Status AddDaemonMetrics(metrics::StrataMetrics& m, const daemon::DaemonServer* server) {
  metrics::Registry& r = m.registry();
  STRATA_ASSIGN_OR_RETURN(auto* sessions,
                          r.AddGauge("strata_daemon_sessions", "Clients attached now."));
  STRATA_ASSIGN_OR_RETURN(auto* connections,
                          r.AddGauge("strata_daemon_connections", "Client sockets open now."));
  STRATA_ASSIGN_OR_RETURN(auto* total, r.AddCounter("strata_daemon_sessions_total",
                                                    "Clients attached since start-up."));
  STRATA_ASSIGN_OR_RETURN(
      auto* holding,
      r.AddCounter("strata_daemon_sessions_ended_holding_total",
                   "Clients that went away holding leases or unfinished stores (given back)."));
  STRATA_ASSIGN_OR_RETURN(
      auto* errors, r.AddCounter("strata_daemon_protocol_errors_total",
                                 "Malformed or hostile messages; each closed its connection."));
  STRATA_ASSIGN_OR_RETURN(
      auto* refused,
      r.AddCounter("strata_daemon_refused_connections_total",
                   "Connections refused: another user, or over the connection limit."));
  STRATA_ASSIGN_OR_RETURN(
      auto* leased, r.AddGauge("strata_daemon_client_leased_blocks",
                               "G2 and G3 leases a client holds now (by the client's pid/session).",
                               {"client", "tier"}));
  STRATA_ASSIGN_OR_RETURN(
      auto* pending,
      r.AddGauge("strata_daemon_client_pending_blocks",
                 "G2 slots a client reserved and has not finished storing, and the load rounds "
                 "it holds (by the client's pid/session).",
                 {"client", "kind"}));
  r.AddCollector([=] {
    // One series per attached client: those of clients gone are dropped.
    std::set<std::string> now;
    for (const daemon::DaemonClientHoldings& c : server->Clients()) {
      now.insert(c.label);
      auto set = [](metrics::GaugeFamily* f, std::vector<std::string> labels, uint64_t v) {
        if (auto g = f->WithLabels(labels); g.ok()) (*g)->Set(static_cast<double>(v));
      };
      set(leased, {c.label, "host"}, c.holdings.host_leases);
      set(leased, {c.label, "disk"}, c.holdings.disk_leases);
      set(pending, {c.label, "reserved"}, c.holdings.reserved);
      set(pending, {c.label, "load_rounds"}, c.holdings.rounds);
    }
    auto gone = [&](const std::vector<std::string>& labels) { return !now.contains(labels[0]); };
    leased->RemoveIf(gone);
    pending->RemoveIf(gone);
    const daemon::DaemonServerStats s = server->stats();
    sessions->Get().Set(static_cast<double>(s.sessions));
    connections->Get().Set(static_cast<double>(s.connections));
    total->Get().SetTotal(static_cast<double>(s.sessions_total));
    holding->Get().SetTotal(static_cast<double>(s.sessions_ended_with_holdings));
    errors->Get().SetTotal(static_cast<double>(s.protocol_errors));
    refused->Get().SetTotal(static_cast<double>(s.refused));
  });
  return Status::Ok();
}

}  // namespace

DaemonCommand::DaemonCommand(CLI::App& app) {
  cmd_ = app.add_subcommand(
      "daemon",
      "Run the node's KV cache as a service: own G2 (shared memory), G3 and G4 and serve them "
      "to the engine processes of this node over a Unix socket, until SIGINT/SIGTERM");
  cmd_->add_option("--config", config_path_,
                   "TOML configuration file (default: $STRATA_CONFIG, else built-in defaults)")
      ->option_text("FILE");
  cmd_->add_option("--socket", socket_, "Unix socket to listen on (default: daemon.socket)")
      ->option_text("PATH");
  cmd_->add_option("--group", group_,
                   "Let this group's members connect too: socket 0660 (default: daemon.group; "
                   "else this user only, 0600)");
  cmd_->add_option("--preset", preset_,
                   "Take the KV layout of this reference-engine preset (tiny, small, demo), for "
                   "`strata serve --daemon` clients (default: the configuration's [layout])");
  cmd_->add_option("--metrics-port", metrics_port_,
                   "Port of /metrics; 0 picks a free one (default: metrics.port)");
  AddTierFlags(cmd_, &tiers_);
}

int DaemonCommand::Run(const std::string& top_config_path) {
  Result<StrataConfig> config = LoadOrReport(config_path_.empty() ? top_config_path : config_path_);
  if (!config.ok()) return kExitUsage;
  BlockManagerOptions options = config->manager;
  auto usage = [](const Status& s) {
    fmt::print(stderr, "strata daemon: {}\n", s.ToString());
    return kExitUsage;
  };
  if (Status s = ApplyTierFlags(tiers_, &options); !s.ok()) return usage(s);
  const std::string socket = socket_ ? *socket_ : options.daemon.socket;
  if (socket.empty())
    return usage(Status::InvalidArgument("no socket: give --socket PATH or set daemon.socket"));
  options.daemon.socket.clear();  // the tiers live here
  if (preset_) {
    Result<engine::ModelConfig> model = engine::ModelConfig::Preset(*preset_, config->serve.seed);
    if (!model.ok()) return usage(model.status());
    options.layout = model->kv_layout();
    options.model_fingerprint = model->Fingerprint();
  }
  if (Status s = options.Validate(); !s.ok()) return usage(s);
  const std::string group = group_ ? *group_ : config->daemon_group;
  for (const std::string& note : config->notes) spdlog::info("strata daemon: {}", note);

  const sigset_t stop_signals = BlockStopSignals();
  auto metrics = metrics::StrataMetrics::Create();
  if (!metrics.ok()) return usage(metrics.status());
  auto server = daemon::DaemonServer::Start(options, {.socket_path = socket, .group = group});
  if (!server.ok()) {
    fmt::print(stderr, "strata daemon: {}\n", server.status().ToString());
    return server.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitRuntime;
  }
  daemon::DaemonServer* d = server->get();
  (*metrics)->AttachStats(
      [d] {
        BlockManagerStats s;
        d->tiers().FillStats(&s);
        return s;
      },
      options.layout.block_bytes());
  if (Status s = AddDaemonMetrics(**metrics, d); !s.ok()) return usage(s);
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  std::string metrics_where = "off";
  const ServeConfig& sc = config->serve;
  if (sc.metrics_enabled) {
    auto ms = metrics::MetricsServer::Start(
        {.host = sc.host, .port = metrics_port_ ? *metrics_port_ : sc.metrics_port},
        [m = *metrics] { return m->Render(); });
    if (ms.ok()) {
      metrics_server = std::move(ms).value();
      metrics_where = fmt::format("http://{}:{}/metrics", sc.host, metrics_server->port());
    } else {
      spdlog::error("strata daemon: metrics endpoint not started: {}", ms.status().ToString());
    }
  }

  BlockManagerStats st;
  d->tiers().FillStats(&st);
  const HostBuffer& g2 = d->tiers().host()->buffer();
  std::string tiers =
      fmt::format("G2 host {} ({} blocks, shared memory{})", FormatGiB(options.host.capacity_bytes),
                  st.host_capacity_blocks, g2.huge_pages() ? ", huge pages" : "");
  if (options.disk.capacity_bytes > 0) {
    std::error_code ec;
    auto dir = std::filesystem::absolute(options.disk.directory, ec).lexically_normal();
    tiers += fmt::format(", G3 disk {} ({} blocks) in {} ({} recovered)",
                         FormatGiB(options.disk.capacity_bytes), st.disk_capacity_blocks,
                         ec ? options.disk.directory : dir.string(), st.disk_recovered_blocks);
  } else {
    tiers += ", no G3 disk tier";
  }
  if (st.shared_enabled)
    tiers += fmt::format(", G4 shared ({})", SharedTierKindName(options.shared.kind));
  fmt::print(
      "strata daemon: ready on {} ({}) | pid {} | KV layout [{}], {} KiB/block | {} | metrics at "
      "{}\n",
      socket, group.empty() ? "0600, this user only" : fmt::format("0660, group {}", group),
      getpid(), options.layout.ToString(), options.layout.block_bytes() / 1024, tiers,
      metrics_where);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("strata daemon: {} received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  if (metrics_server) metrics_server->Stop();
  (*metrics)->AttachStats(nullptr, 0);
  d->Stop();        // every session ends, what they held is given back
  server->reset();  // the offloaders finish their queues, G3 closes
  spdlog::info("strata daemon: stopped");
  return 0;
}

}  // namespace strata::cli
