// Adapts a TLS Channel to the Transport interface the syncer and replica sessions speak.
// Does not own the channel unless constructed from a unique_ptr.
#pragma once

#include <memory>

#include "protocol/channel.h"
#include "protocol/transport.h"

namespace cyrsync::protocol {

class ChannelTransport final : public Transport {
 public:
  explicit ChannelTransport(Channel* ch) : ch_(ch) {}
  explicit ChannelTransport(std::unique_ptr<Channel> ch) : owned_(std::move(ch)), ch_(owned_.get()) {}
  Status Send(uint16_t type, std::string_view payload) override { return ch_->Send(type, payload); }
  Status Flush() override { return ch_->Flush(); }
  Result<Frame> Receive() override { return ch_->Receive(); }
  void Close() override { ch_->Close(); }

 private:
  std::unique_ptr<Channel> owned_;
  Channel* ch_;
};

}  // namespace cyrsync::protocol
