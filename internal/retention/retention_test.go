package retention

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/store/storetest"
)

// TestRunSweepsAndCounts runs the timer against a real database: a failed
// claim past its retention loses its token and secret, and the sweep is
// logged and counted in claimsvc_retention_rows_total.
func TestRunSweepsAndCounts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := storetest.New(t, bytes.Repeat([]byte{9}, 32))
	sk := claim.Secret("s")
	a, err := s.Create(ctx, claim.Request{Token: "RETENTION_RUN_TOKEN", SecretKey: &sk}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Lease(ctx, 1, time.Minute, nil)
	if err != nil || len(jobs) != 1 {
		t.Fatal(jobs, err)
	}
	if err := storetest.Report(t, s, claim.OutcomeOf(jobs[0], claim.OutcomeFailed, context.DeadlineExceeded, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE claims SET updated_at = now() - interval '2 hours' WHERE id = $1`, a.Claim.ID); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	var logs bytes.Buffer
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		Run(runCtx, s, Config{Retention: store.Retention{FailedSecrets: time.Hour}, Interval: 50 * time.Millisecond,
			FirstAfter: 10 * time.Millisecond}, slog.New(slog.NewTextHandler(&logs, nil)), m)
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for counted(t, m, "erased_secrets") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the failed claim's secrets were not erased")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "retention sweep") {
		t.Fatalf("not logged:\n%s", logs.String())
	}
	var left int
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM claims WHERE token IS NOT NULL OR secret IS NOT NULL`).Scan(&left)
	if left != 0 {
		t.Fatalf("%d claims still hold a token or secret", left)
	}
}

func TestRunOffSaysSo(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	Run(t.Context(), nil, Config{}, slog.New(slog.NewTextHandler(&logs, nil)), metrics.New())
	if !strings.Contains(logs.String(), "retention is off") {
		t.Fatal(logs.String())
	}
}

// counted reads claimsvc_retention_rows_total{action} from what /metrics
// serves.
func counted(t *testing.T, m *metrics.Metrics, action string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, `claimsvc_retention_rows_total{action="`+action+`"} `); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
