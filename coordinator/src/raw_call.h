// The coordinator's methods are registered as raw callback methods: gRPC hands over the
// request's bytes, and the service checks the method's size limit before parsing them (an
// unauthenticated client cannot make the server parse a 64 MiB CheckIn), then parses them
// itself so that bytes that are not the method's message get a status that says so
// (INVALID_ARGUMENT "... failed to parse") instead of gRPC's bare UNIMPLEMENTED.
#ifndef FEDLORA_COORDINATOR_SRC_RAW_CALL_H_
#define FEDLORA_COORDINATOR_SRC_RAW_CALL_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include <string>

#include "absl/status/status.h"
#include "fedlora/coordinator/grpc_service.h"
#include "google/protobuf/message_lite.h"

namespace fedlora::coordinator::internal {

// INVALID_ARGUMENT "METHOD request of N bytes is too large (limit L; refused before parsing)"
// when `bytes` is longer than `limit`, else OK.
absl::Status CheckRequestSize(const grpc::ByteBuffer& bytes, size_t limit, const char* method);

// Parses `bytes` into `out` unless they are longer than `limit` (checked first, nothing is
// parsed). INVALID_ARGUMENT "METHOD request of N bytes is too large (limit L; refused before
// parsing)" or "request body is not a valid fedlora.v1.X (failed to parse)".
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, size_t limit, const char* method,
                          google::protobuf::MessageLite* out);

// Serializes `message` into `out` (replacing what it held). INTERNAL when it cannot.
grpc::Status SerializeReply(const google::protobuf::MessageLite& message, grpc::ByteBuffer* out);

// One unary call: the parsed request, the reply the handler fills, and the raw reply buffer
// gRPC sends. Reply() serializes `response` (when the status is OK) and finishes the call;
// the object deletes itself when gRPC is done with the call, so nothing may touch it after
// Reply().
template <class Request, class Response>
class UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  explicit UnaryCall(grpc::ByteBuffer* reply) : reply_(reply) {}
  void Reply(const grpc::Status& s) {
    if (s.ok()) {
      grpc::Status w = SerializeReply(response, reply_);
      if (!w.ok()) return Finish(w);
    }
    Finish(s);
  }
  void OnDone() override { delete this; }

  Request request;
  Response response;

 private:
  grpc::ByteBuffer* reply_;
};

}  // namespace fedlora::coordinator::internal

namespace fedlora::coordinator {

template <class Call>
grpc::ServerUnaryReactor* CoordinatorService::Refuse(Call* call, const char* method,
                                                     const absl::Status& s) {
  CountError(method, s);
  call->Reply(ToGrpcStatus(s));
  return call;
}

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_SRC_RAW_CALL_H_
