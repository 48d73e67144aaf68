// Connecting to an already resolved address list (internal; the test seam
// for Happy Eyeballs: a test can put an address that never answers ahead of
// one that does, which a resolver cannot be made to return).
#pragma once

#include <weft/address.hpp>
#include <weft/coro.hpp>
#include <weft/stream_reader.hpp>
#include <weft/stream_writer.hpp>
#include <weft/streams.hpp>

#include <utility>
#include <vector>

namespace weft::detail {

/// What open_connection does once `host` is resolved: `infos` in the order
/// given (after options.interleave), one at a time or staggered
/// (options.happy_eyeballs_delay). Call from a task.
/// @throws as open_connection; ValueError for an empty list.
Coro<std::pair<StreamReader, StreamWriter>> open_connection_to(std::vector<AddrInfo> infos,
                                                               ConnectOptions options);

/// asyncio's _interleave_addrinfos: the first `first_family_count` of the
/// first family, then one of each family in turn (families in order of
/// first appearance).
std::vector<AddrInfo> interleave_addrinfos(std::vector<AddrInfo> infos, int first_family_count);

}  // namespace weft::detail
