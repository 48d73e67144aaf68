// weft::io umbrella: addresses, sockets, streams, servers, datagrams,
// signals, subprocesses (api.md section 7).
#pragma once
