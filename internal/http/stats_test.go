package http_test

import (
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/claimsvc/claimsvc/internal/claim"
	claimhttp "github.com/claimsvc/claimsvc/internal/http"
	"github.com/claimsvc/claimsvc/internal/metrics"
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

// TestConsoleRoutesAreInternal: with the console mounted, every route the
// spec does not describe is under ConsolePrefix (the internal routes), and
// the console answers there.
func TestConsoleRoutesAreInternal(t *testing.T) {
	t.Parallel()
	doc := specDoc(t)
	ui := chi.NewRouter()
	ui.Get("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("console")) })
	e := newEnv(t, func(d *claimhttp.Deps) { d.Console = ui })
	h := claimhttp.NewServer(claimhttp.Deps{Store: e.store, Validator: claim.NewValidator(claim.Rules{}), Metrics: metrics.New(),
		Log: slog.New(slog.DiscardHandler), Console: ui})
	internal := 0
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if doc.Paths.Find(strings.TrimSuffix(route, "/*")) != nil {
			return nil
		}
		if !strings.HasPrefix(route, claimhttp.ConsolePrefix+"/") {
			t.Errorf("route %s %s is neither in api/openapi.yaml nor internal", method, route)
		}
		internal++
		return nil
	})
	if err != nil || internal == 0 {
		t.Fatalf("walk: %v, %d internal routes", err, internal)
	}
	res, err := http.Get(e.srv.URL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "console" || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("console: %d %s", res.StatusCode, body)
	}
}
