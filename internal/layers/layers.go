// Package layers states which of claimsvc's packages may depend on which, and
// its test holds the tree to it (go list -deps, so indirect imports count).
//
// The domain (internal/claim) depends on nothing of ours. The edges (HTTP,
// the dispatcher, MQTT, ThingsBoard's REST API, the store) depend on the
// domain and on small shared helpers, never on each other: each defines the
// small interface it consumes, and cmd/claimsvc wires them together.
package layers

// Allowed maps a package (below internal/) to every package of ours it may
// depend on, directly or not. A package missing from the map is not checked.
var Allowed = map[string][]string{
	"claim":    {},
	"wire":     {"claim"},
	"http":     {"claim", "wire", "health", "metrics", "notify"},
	"dispatch": {"claim", "health", "metrics"},
	"track":    {"claim", "health", "metrics"},
	"mqtt":     {"claim"},
	"tbrest":   {"claim"},
	"store":    {"claim", "seal"},
	"client":   {"claim", "wire"},
	"factory":  {"claim", "wire", "client"},
	"cli":      {"claim", "wire", "client", "factory"},
	"console":  {"claim", "wire", "client", "factory", "health", "seal", "store"},
}
