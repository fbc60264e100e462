package http_test

import (
	"crypto/sha256"
	"testing"

	claimhttp "github.com/claimsvc/claimsvc/internal/http"
)

func TestStatsCountsByStatusForKeyHolders(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("operator-key"))
	e := newEnv(t, func(d *claimhttp.Deps) { d.Access = claimhttp.Access{KeyHashes: [][]byte{sum[:]}} })
	for _, tok := range []string{"STATS_TOKEN_0001", "STATS_TOKEN_0002"} {
		if r := e.do("POST", "/devices/claim", map[string]string{"X-Device-Token": tok}, `{"secretKey":"s"}`); r.status != 202 {
			t.Fatalf("claim: %d %s", r.status, r.raw)
		}
	}
	if r := e.do("GET", "/stats", nil, ""); r.status != 401 {
		t.Fatalf("without a key: %d", r.status)
	}
	r := e.do("GET", "/stats", map[string]string{"Authorization": "Bearer operator-key"}, "")
	counts, _ := r.body["counts"].(map[string]any)
	backlog, _ := r.body["backlog"].(map[string]any)
	if r.status != 200 || r.body["total"] != float64(2) || counts["pending"] != float64(2) || counts["claimed"] != float64(0) ||
		backlog["pending"] != float64(2) || backlog["oldestPendingSince"] == nil {
		t.Fatalf("stats: %d %s", r.status, r.raw)
	}
}
