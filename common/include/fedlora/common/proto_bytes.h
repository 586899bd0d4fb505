// The deterministic serialization of a protobuf message: the body whose SHA-256 a device signs
// (fedlora/common/call_signature.h) and the coordinator checks. Header-only so that common/
// needs no protobuf link.
#ifndef FEDLORA_COMMON_PROTO_BYTES_H_
#define FEDLORA_COMMON_PROTO_BYTES_H_

#include <string>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message_lite.h"

namespace fedlora {

inline std::string DeterministicBytes(const google::protobuf::MessageLite& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream raw(&out);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace fedlora

#endif  // FEDLORA_COMMON_PROTO_BYTES_H_
