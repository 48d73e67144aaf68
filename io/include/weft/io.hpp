// weft::io umbrella: addresses, sockets, streams, servers, datagrams,
// signals, subprocesses, files (docs/api.md, io).
#pragma once

#include <weft/address.hpp>
#include <weft/datagram.hpp>
#include <weft/file.hpp>
#include <weft/server.hpp>
#include <weft/signals.hpp>
#include <weft/sock_ops.hpp>
#include <weft/ssl.hpp>
#include <weft/stream_reader.hpp>
#include <weft/stream_writer.hpp>
#include <weft/streams.hpp>
#include <weft/subprocess.hpp>
