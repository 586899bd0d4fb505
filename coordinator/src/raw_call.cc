#include "raw_call.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include "absl/strings/str_cat.h"

namespace fedlora::coordinator::internal {

absl::Status CheckRequestSize(const grpc::ByteBuffer& bytes, size_t limit, const char* method) {
  const size_t n = bytes.Length();
  if (n <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(method, " request of ", n,
                                                 " bytes is too large (limit ", limit,
                                                 "; refused before parsing)"));
}

absl::Status ParseRequest(const grpc::ByteBuffer& bytes, size_t limit, const char* method,
                          google::protobuf::MessageLite* out) {
  if (absl::Status s = CheckRequestSize(bytes, limit, method); !s.ok()) return s;
  // A shallow copy (the slices are reference-counted): the reader consumes its buffer.
  grpc::ByteBuffer copy(bytes);
  grpc::Status s =
      grpc::GenericDeserialize<grpc::ProtoBufferReader, google::protobuf::MessageLite>(&copy, out);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request body is not a valid ", out->GetTypeName(), " (failed to parse; hint: ", method,
        " takes a serialized ", out->GetTypeName(), ", see proto/fedlora_v1.proto)"));
  }
  return absl::OkStatus();
}

grpc::Status SerializeReply(const google::protobuf::MessageLite& message, grpc::ByteBuffer* out) {
  bool own = false;
  grpc::ByteBuffer bytes;
  grpc::Status s = grpc::GenericSerialize<grpc::ProtoBufferWriter, google::protobuf::MessageLite>(
      message, &bytes, &own);
  if (!s.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "cannot serialize the reply");
  out->Swap(&bytes);
  return grpc::Status::OK;
}

}  // namespace fedlora::coordinator::internal
