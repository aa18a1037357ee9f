package main

import "runtime/debug"

// Garbage collector settings for the signpost process, unless the operator
// sets GOGC or GOMEMLIMIT (the Go runtime reads those itself).
//
// Intake allocates a few tens of kilobytes a request and keeps almost none
// of it, so at Go's default (GOGC=100) the collector ran often enough to be
// a fifth of the server's CPU in the intake profile. GOGC=300 cut the
// server's CPU per referral by about a tenth (deploy/bench/run.sh, same machine,
// alternating runs). The soft memory limit keeps that from costing memory
// when a burst grows the heap: as the heap nears it, the collector runs as
// often as it must, inside the 100 MiB RSS budget. The limit covers the
// Go runtime's memory, not the binary's own pages: at 80 MiB an overload
// (2,500/s offered, 256 requests in flight, the delivery backlog growing)
// peaked at 100-101 MiB RSS; 72 MiB leaves that room.
const (
	defaultGCPercent   = 300
	defaultMemoryLimit = 72 << 20
)

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
