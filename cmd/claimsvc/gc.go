package main

import (
	"os"
	"runtime/debug"
	"strconv"
)

// defaultGCPercent is the garbage collector's target when the operator has
// not set GOGC. claimsvc's live heap is a few megabytes, so Go's default
// (100) collects after every few hundred requests; at 400 a collection comes
// a quarter as often, which took about 13 % off claimsvc's CPU per claim at
// 32 clients (docs/performance.md §3). The heap stays small (about five
// times the live heap), and GOMEMLIMIT, when set, still caps it.
const defaultGCPercent = 400

// tuneGC applies defaultGCPercent unless GOGC is set, and says which target
// is in force.
func tuneGC() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v
	}
	debug.SetGCPercent(defaultGCPercent)
	return strconv.Itoa(defaultGCPercent)
}
