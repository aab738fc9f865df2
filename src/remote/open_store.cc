#include "remote/open_store.h"

#include "remote/fs_store.h"
#include "remote/redis_store.h"

namespace strata {

Result<std::shared_ptr<RemoteStore>> OpenRemoteStore(const SharedTierOptions& o,
                                                     uint64_t block_bytes) {
  switch (o.kind) {
    case SharedTierKind::kFilesystem: {
      FsStoreOptions f;
      f.directory = o.directory;
      f.capacity_bytes = o.capacity_bytes;
      f.block_bytes = block_bytes;
      f.grace_period = o.grace_period;
      f.io_timeout = o.io_timeout;
      f.hmac_key = o.hmac_key;
      f.group = o.group;
      STRATA_ASSIGN_OR_RETURN(std::unique_ptr<FsStore> store, FsStore::Create(f));
      return std::shared_ptr<RemoteStore>(std::move(store));
    }
    case SharedTierKind::kRedis: {
      RedisStoreOptions r;
      r.endpoints = o.endpoints;
      r.topology = o.cluster ? RedisTopology::kCluster : RedisTopology::kAuto;
      r.username = o.username;
      r.password = o.password;
      r.tls.enabled = o.tls;
      r.tls.ca_file = o.tls_ca_file;
      r.tls.cert_file = o.tls_cert_file;
      r.tls.key_file = o.tls_key_file;
      r.tls.server_name = o.tls_server_name;
      r.tls.verify_peer = o.tls_verify_peer;
      r.key_prefix = o.key_prefix;
      r.ttl_seconds = o.ttl_seconds;
      r.io_timeout = o.io_timeout;
      r.block_bytes = block_bytes;
      r.hmac_key = o.hmac_key;
      STRATA_ASSIGN_OR_RETURN(std::unique_ptr<RedisStore> store, RedisStore::Create(r));
      return std::shared_ptr<RemoteStore>(std::move(store));
    }
    case SharedTierKind::kNone:
      break;
  }
  return Status::InvalidArgument("shared.kind is none: no shared tier to open");
}

}  // namespace strata
