// DownloadAdapter and DownloadRelease: the global adapter of a version, or a release bundle, as
// a server stream of chunks, each with its own SHA-256 and the whole blob's, from any offset
// (a device resumes a broken download).
// Limits (streams per device, streams in all) are checked before anything is read from the
// store; all streams of one blob share one immutable copy (blob_cache.h).
// Flow control is gRPC's: the next chunk is written only after the previous one was taken, so
// a client that never reads holds one chunk of memory until the sweeper cancels it.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "blob_cache.h"
#include "fedlora/common/encoding.h"
#include "fedlora/coordinator/grpc_service.h"
#include "raw_call.h"

namespace fedlora::coordinator {

class CoordinatorService::DownloadReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  DownloadReactor(CoordinatorService* service, const char* method, std::string device,
                  internal::BlobCache::Blob blob, std::string sha256_hex, uint64_t offset,
                  uint32_t chunk)
      : service_(service),
        method_(method),
        device_(std::move(device)),
        blob_(std::move(blob)),
        sha_(std::move(sha256_hex)),
        offset_(offset),
        chunk_bytes_(chunk) {}
  // Starts writing; called once the reactor is registered (OnDone may follow at any time).
  void Begin() { Next(); }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "download interrupted"));
      return;
    }
    Next();
  }
  void OnDone() override {
    blob_.reset();  // before DownloadFinished reads the cache's size
    service_->DownloadFinished(this, device_);
    delete this;
  }

 private:
  void Next() {
    const std::string& blob = *blob_;
    if (offset_ >= blob.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = std::min<size_t>(chunk_bytes_, blob.size() - offset_);
    chunk_.Clear();
    chunk_.set_offset(offset_);
    chunk_.set_data(blob.data() + offset_, n);
    chunk_.set_sha256(Sha256(chunk_.data()));
    chunk_.set_total_bytes(blob.size());
    chunk_.set_total_sha256(sha_);
    offset_ += n;
    service_->metrics_->Increment("fedlora_bytes_sent_total", {method_},
                                  static_cast<double>(chunk_.ByteSizeLong()));
    if (grpc::Status s = internal::SerializeReply(chunk_, &bytes_); !s.ok()) return Finish(s);
    StartWrite(&bytes_);
  }

  CoordinatorService* service_;
  const char* method_;
  std::string device_;
  internal::BlobCache::Blob blob_;  // shared with the other streams of this blob
  std::string sha_;
  uint64_t offset_;
  uint32_t chunk_bytes_;
  v1::AdapterChunk chunk_;
  grpc::ByteBuffer bytes_;  // chunk_ serialized; kept until the write is done
};

namespace {

grpc::ServerWriteReactor<grpc::ByteBuffer>* RefuseDownload(const absl::Status& s) {
  class Refusal : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
   public:
    explicit Refusal(grpc::Status status) { Finish(status); }
    void OnDone() override { delete this; }
  };
  return new Refusal(ToGrpcStatus(s));
}

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* CoordinatorService::DownloadAdapter(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_request) {
  auto refuse = [&](const absl::Status& s) {
    CountError("DownloadAdapter", s);
    return RefuseDownload(s);
  };
  v1::DownloadRequest parsed;
  const v1::DownloadRequest* request = &parsed;
  if (absl::Status s = internal::ParseRequest(*raw_request, limits_.small_message_bytes,
                                              "DownloadAdapter", &parsed);
      !s.ok()) {
    return refuse(s);
  }
  auto device = Authenticate(ctx, "/fedlora.v1.Coordinator/DownloadAdapter", *request);
  if (!device.ok()) return refuse(device.status());
  const uint64_t version = request->version();
  return StartDownload(ctx, "DownloadAdapter", *device, *request,
                       [this, version]() -> absl::StatusOr<std::string> {
                         auto versions = store_->ListAdapterVersions();
                         if (!versions.ok()) return versions.status();
                         for (const auto& v : *versions) {
                           if (v.version == version) return v.sha256;
                         }
                         return absl::NotFoundError(absl::StrCat("no adapter version ", version));
                       });
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* CoordinatorService::DownloadRelease(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_request) {
  auto refuse = [&](const absl::Status& s) {
    CountError("DownloadRelease", s);
    return RefuseDownload(s);
  };
  v1::DownloadRequest parsed;
  const v1::DownloadRequest* request = &parsed;
  if (absl::Status s = internal::ParseRequest(*raw_request, limits_.small_message_bytes,
                                              "DownloadRelease", &parsed);
      !s.ok()) {
    return refuse(s);
  }
  auto device = Authenticate(ctx, "/fedlora.v1.Coordinator/DownloadRelease", *request);
  if (!device.ok()) return refuse(device.status());
  const uint64_t version = request->version();
  return StartDownload(
      ctx, "DownloadRelease", *device, *request, [this, version]() -> absl::StatusOr<std::string> {
        auto releases = store_->ListReleases();
        if (!releases.ok()) return releases.status();
        for (const auto& r : *releases) {
          if (r.version == version) return r.bundle_sha256;
        }
        return absl::NotFoundError(absl::StrCat("no release version ", version,
                                                " (hint: ask GetRelease what to download)"));
      });
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* CoordinatorService::StartDownload(
    grpc::CallbackServerContext* ctx, const char* method, const std::string& device,
    const v1::DownloadRequest& req,
    const std::function<absl::StatusOr<std::string>()>& find_sha256) {
  const v1::DownloadRequest* request = &req;
  auto refuse = [&](const absl::Status& s) {
    CountError(method, s);
    return RefuseDownload(s);
  };
  const uint32_t chunk = request->chunk_bytes() == 0
                             ? limits_.chunk_bytes
                             : std::min(request->chunk_bytes(), limits_.chunk_bytes);
  if (chunk < 1024) return refuse(absl::InvalidArgumentError("chunk_bytes must be >= 1024"));
  // The limits first: a device over them costs no store read.
  if (absl::Status s = ReserveDownload(device); !s.ok()) return refuse(s);
  auto release = [&](const absl::Status& s) {
    ReleaseDownload(device);
    return refuse(s);
  };
  auto sha = find_sha256();
  if (!sha.ok()) return release(sha.status());
  auto blob = blobs_->Get(*sha, [&]() {
    metrics_->Increment("fedlora_download_blob_reads_total");
    return store_->ReadBlob(*sha);
  });
  if (!blob.ok()) return release(blob.status());
  UpdateCacheGauge();
  if (request->offset() > (*blob)->size()) {
    const size_t size = (*blob)->size();
    blob->reset();
    return release(absl::OutOfRangeError(
        absl::StrCat("offset ", request->offset(), " is past the end (", size, ")")));
  }
  auto* reactor =
      new DownloadReactor(this, method, device, std::move(*blob), *sha, request->offset(), chunk);
  {
    std::lock_guard<std::mutex> lock(downloads_mu_);
    downloads_[reactor] = {ctx, absl::Now()};
  }
  reactor->Begin();
  return reactor;
}

absl::Status CoordinatorService::ReserveDownload(const std::string& device) {
  std::lock_guard<std::mutex> lock(downloads_mu_);
  if (downloads_active_ >= limits_.max_downloads) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many concurrent downloads on the coordinator (", downloads_active_,
                     ") (hint: retry later with backoff)"));
  }
  auto it = downloads_per_device_.find(device);
  if (it != downloads_per_device_.end() && it->second >= limits_.max_downloads_per_device) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many concurrent downloads (", it->second,
                     ") for this device (hint: finish or cancel the running one)"));
  }
  downloads_active_++;
  downloads_per_device_[device]++;
  return absl::OkStatus();
}

void CoordinatorService::ReleaseDownload(const std::string& device) {
  {
    std::lock_guard<std::mutex> lock(downloads_mu_);
    downloads_active_--;
    if (--downloads_per_device_[device] <= 0) downloads_per_device_.erase(device);
  }
  UpdateCacheGauge();
}

void CoordinatorService::UpdateCacheGauge() {
  metrics_->Set("fedlora_download_cache_bytes", static_cast<double>(blobs_->BytesHeld()));
}

void CoordinatorService::DownloadFinished(DownloadReactor* reactor, const std::string& device) {
  {
    std::lock_guard<std::mutex> lock(downloads_mu_);
    downloads_.erase(reactor);
  }
  ReleaseDownload(device);
}

void CoordinatorService::SweepStalledDownloads() {
  std::lock_guard<std::mutex> lock(downloads_mu_);
  const absl::Time now = absl::Now();
  for (auto& [reactor, info] : downloads_) {
    if (now - info.second > limits_.download_timeout) info.first->TryCancel();
  }
}

}  // namespace fedlora::coordinator
