// DownloadAdapter and DownloadRelease: the global adapter of a version, or a release bundle, as
// a server stream of chunks, each with its own SHA-256 and the whole blob's, from any offset
// (a device resumes a broken download).
// Flow control is gRPC's: the next chunk is written only after the previous one was taken, so
// a client that never reads holds one chunk of memory until the sweeper cancels it.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"
#include "fedlora/coordinator/grpc_service.h"
#include "raw_call.h"

namespace fedlora::coordinator {

class CoordinatorService::DownloadReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  DownloadReactor(CoordinatorService* service, const char* method, std::string device,
                  std::string blob, std::string sha256_hex, uint64_t offset, uint32_t chunk)
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
    service_->DownloadFinished(this, device_);
    delete this;
  }

 private:
  void Next() {
    if (offset_ >= blob_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = std::min<size_t>(chunk_bytes_, blob_.size() - offset_);
    chunk_.Clear();
    chunk_.set_offset(offset_);
    chunk_.set_data(blob_.substr(offset_, n));
    chunk_.set_sha256(Sha256(chunk_.data()));
    chunk_.set_total_bytes(blob_.size());
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
  std::string blob_;
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
  auto versions = store_->ListAdapterVersions();
  if (!versions.ok()) return refuse(versions.status());
  const AdapterVersion* found = nullptr;
  for (const auto& v : *versions) {
    if (v.version == request->version()) found = &v;
  }
  if (!found) {
    return refuse(absl::NotFoundError(absl::StrCat("no adapter version ", request->version())));
  }
  auto blob = store_->ReadBlob(found->sha256);
  if (!blob.ok()) return refuse(blob.status());
  return StartDownload(ctx, "DownloadAdapter", *device, *request, std::move(*blob),
                       found->sha256);
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
  auto releases = store_->ListReleases();
  if (!releases.ok()) return refuse(releases.status());
  const ReleaseRecord* found = nullptr;
  for (const auto& r : *releases) {
    if (r.version == request->version()) found = &r;
  }
  if (!found) {
    return refuse(absl::NotFoundError(absl::StrCat("no release version ", request->version(),
                                                   " (hint: ask GetRelease what to download)")));
  }
  auto blob = store_->ReadBlob(found->bundle_sha256);
  if (!blob.ok()) return refuse(blob.status());
  return StartDownload(ctx, "DownloadRelease", *device, *request, std::move(*blob),
                       found->bundle_sha256);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* CoordinatorService::StartDownload(
    grpc::CallbackServerContext* ctx, const char* method, const std::string& device,
    const v1::DownloadRequest& req, std::string blob, const std::string& sha256_hex) {
  const v1::DownloadRequest* request = &req;
  auto refuse = [&](const absl::Status& s) {
    CountError(method, s);
    return RefuseDownload(s);
  };
  if (request->offset() > blob.size()) {
    return refuse(absl::OutOfRangeError(absl::StrCat("offset ", request->offset(),
                                                     " is past the end (", blob.size(), ")")));
  }
  const uint32_t chunk = request->chunk_bytes() == 0
                             ? limits_.chunk_bytes
                             : std::min(request->chunk_bytes(), limits_.chunk_bytes);
  if (chunk < 1024) return refuse(absl::InvalidArgumentError("chunk_bytes must be >= 1024"));
  DownloadReactor* reactor = nullptr;
  {
    std::lock_guard<std::mutex> lock(downloads_mu_);
    if (static_cast<int>(downloads_.size()) >= limits_.max_downloads ||
        downloads_per_device_[device] >= limits_.max_downloads_per_device) {
      return refuse(absl::ResourceExhaustedError(
          "too many concurrent downloads (hint: finish or cancel the running one)"));
    }
    downloads_per_device_[device]++;
    reactor = new DownloadReactor(this, method, device, std::move(blob), sha256_hex,
                                  request->offset(), chunk);
    downloads_[reactor] = {ctx, absl::Now()};
  }
  reactor->Begin();
  return reactor;
}

void CoordinatorService::DownloadFinished(DownloadReactor* reactor, const std::string& device) {
  std::lock_guard<std::mutex> lock(downloads_mu_);
  downloads_.erase(reactor);
  if (--downloads_per_device_[device] <= 0) downloads_per_device_.erase(device);
}

void CoordinatorService::SweepStalledDownloads() {
  std::lock_guard<std::mutex> lock(downloads_mu_);
  const absl::Time now = absl::Now();
  for (auto& [reactor, info] : downloads_) {
    if (now - info.second > limits_.download_timeout) info.first->TryCancel();
  }
}

}  // namespace fedlora::coordinator
