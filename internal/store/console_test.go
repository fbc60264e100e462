package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/store"
)

func named(token, secret, device string) claim.Request {
	r := req(token, secret, 0)
	r.DeviceName = device
	return r
}

func TestStatsCountsEveryStatusAndTheBacklog(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	st, err := s.Stats(ctx)
	if err != nil || st.Total != 0 || len(st.Counts) != len(claim.Statuses) || st.OldestPendingSince != nil || st.OldestPendingAge() != 0 {
		t.Fatalf("empty: %+v %v", st, err)
	}
	for i := range 5 {
		if _, err := s.Create(ctx, req(fmt.Sprintf("STATS_TOKEN_%04d", i), "s", 0), hold); err != nil {
			t.Fatal(err)
		}
	}
	jobs, _ := s.Lease(ctx, 2, time.Minute, nil)
	if err := deliver(t, s, jobs[0]); err != nil {
		t.Fatal(err)
	}
	if err := retryLater(t, s, jobs[1], time.Hour, "connection refused"); err != nil {
		t.Fatal(err)
	}
	st, err = s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 5 || st.Counts[claim.StatusPending] != 4 || st.Counts[claim.StatusDelivered] != 1 ||
		st.Pending != 4 || st.Due != 3 || st.WithErrors != 1 || st.OldestPendingSince == nil || st.OldestPendingAge() <= 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestSearchFiltersAndPages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	var ids []uuid.UUID
	for i := range 7 {
		acc, err := s.Create(ctx, named(fmt.Sprintf("LINE_A_TOKEN_%03d", i), "s", fmt.Sprintf("Thermostat %d", i)), hold)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, acc.Claim.ID)
	}
	if _, err := s.Create(ctx, named("OTHER_TOKEN_0001", "s", "Sensor_1"), hold); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, named("OTHER_TOKEN_0002", "s", "Sensor%2"), hold); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, ids[3]); err != nil {
		t.Fatal(err)
	}

	search := func(f claim.Filter, limit int, cursor string) claim.Page {
		t.Helper()
		p, err := s.Search(ctx, f, limit, cursor)
		if err != nil {
			t.Fatalf("search %+v: %v", f, err)
		}
		return p
	}
	// Device names by prefix in any case, newest first, three at a time.
	var got []uuid.UUID
	cursor := ""
	for range 5 {
		p := search(claim.Filter{DeviceName: "thermo"}, 3, cursor)
		for _, c := range p.Claims {
			got = append(got, c.ID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(got) != 7 || got[0] != ids[6] || got[6] != ids[0] {
		t.Fatalf("thermostats: %v", got)
	}
	// LIKE's wildcards in a name are plain characters.
	if p := search(claim.Filter{DeviceName: "Sensor%"}, 10, ""); len(p.Claims) != 1 || p.Claims[0].DeviceName != "Sensor%2" {
		t.Fatalf("Sensor%%: %+v", p.Claims)
	}
	if p := search(claim.Filter{DeviceName: "Sensor_"}, 10, ""); len(p.Claims) != 1 || p.Claims[0].DeviceName != "Sensor_1" {
		t.Fatalf("Sensor_: %+v", p.Claims)
	}
	// A hint as shown, or its first characters.
	if p := search(claim.Filter{TokenHint: "LINE…05"}, 10, ""); len(p.Claims) != 1 || p.Claims[0].ID != ids[5] {
		t.Fatalf("hint: %+v", p.Claims)
	}
	if p := search(claim.Filter{TokenHint: "OTH"}, 10, ""); len(p.Claims) != 2 {
		t.Fatalf("hint prefix: %+v", p.Claims)
	}
	// Status and time.
	if p := search(claim.Filter{Status: claim.StatusCancelled}, 10, ""); len(p.Claims) != 1 || p.Claims[0].ID != ids[3] {
		t.Fatalf("cancelled: %+v", p.Claims)
	}
	if p := search(claim.Filter{From: time.Now().Add(time.Minute)}, 10, ""); len(p.Claims) != 0 {
		t.Fatalf("from the future: %+v", p.Claims)
	}
	if p := search(claim.Filter{To: time.Now().Add(time.Minute), Status: claim.StatusPending}, 10, ""); len(p.Claims) != 8 {
		t.Fatalf("until now: %d", len(p.Claims))
	}
	if _, err := s.Search(ctx, claim.Filter{}, 10, "not-a-cursor"); claim.ErrorCode(err) != claim.CodeInvalid {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestConsoleActorIsInTheAuditTrail(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	ctx := claim.WithActor(t.Context(), "console:0123abcd")
	one, err := s.Create(ctx, req("ACTOR_TOKEN_0001", "s", 0), hold)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.CreateBatch(ctx, []claim.Request{req("ACTOR_TOKEN_0002", "s", 0)}, hold)
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	api, err := s.Create(t.Context(), req("ACTOR_TOKEN_0003", "s", 0), hold)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, one.Claim.ID); err != nil {
		t.Fatal(err)
	}
	evs, _ := s.Events(t.Context(), one.Claim.ID)
	if len(evs) != 2 || evs[0].Actor != "console:0123abcd" || evs[1].Kind != "cancelled" || evs[1].Actor != "console:0123abcd" {
		t.Fatalf("events of the console's claim: %+v", evs)
	}
	evs, _ = s.Events(t.Context(), res[0].Claim.ID)
	if len(evs) != 1 || evs[0].Actor != "console:0123abcd" {
		t.Fatalf("events of the console's batch claim: %+v", evs)
	}
	evs, _ = s.Events(t.Context(), api.Claim.ID)
	if len(evs) != 1 || evs[0].Actor != "" {
		t.Fatalf("events of the API's claim: %+v", evs)
	}
	// Anything but a short name and a digest prefix is not recorded.
	if a := claim.ActorFrom(claim.WithActor(t.Context(), "console:' OR 1=1")); a != "" {
		t.Fatalf("actor %q", a)
	}
}

func TestRecentOutcomes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	for i := range 3 {
		if _, err := s.Create(ctx, named(fmt.Sprintf("RECENT_TOKEN_%03d", i), "s", fmt.Sprintf("Dev %d", i)), hold); err != nil {
			t.Fatal(err)
		}
	}
	jobs, _ := s.Lease(ctx, 3, time.Minute, nil)
	if err := deliver(t, s, jobs[0]); err != nil {
		t.Fatal(err)
	}
	if err := reject(t, s, jobs[1], "CONNACK 5"); err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, s, jobs[2]); err != nil {
		t.Fatal(err)
	}
	got, err := s.RecentOutcomes(ctx, []string{"delivered"}, 10)
	if err != nil || len(got) != 2 || got[0].Claim.ID != jobs[2].ID || got[1].Claim.ID != jobs[0].ID || got[0].Claim.DeviceName == "" {
		t.Fatalf("deliveries: %+v %v", got, err)
	}
	got, err = s.RecentOutcomes(ctx, []string{"rejected", "failed"}, 10)
	if err != nil || len(got) != 1 || got[0].Claim.ID != jobs[1].ID || got[0].Claim.Status != claim.StatusRejected {
		t.Fatalf("failures: %+v %v", got, err)
	}
}

func TestSessionKeyIsMadeOnceAndShared(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	a, err := s.SessionKey(t.Context(), "console")
	if err != nil || len(a) != 32 {
		t.Fatalf("%x %v", a, err)
	}
	b, err := s.SessionKey(t.Context(), "console")
	if err != nil || string(a) != string(b) {
		t.Fatalf("second: %x %v", b, err)
	}
}

func TestImportsRecordProgress(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	id, err := s.StartImport(ctx, "devices.csv", "console", 3)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Create(ctx, req("IMPORT_TOKEN_001", "s", 0), hold)
	if err := s.AdvanceImport(ctx, id, store.ImportStep{Done: 2, Created: 1, Failed: 1, ClaimIDs: []uuid.UUID{c.Claim.ID},
		Problems: []store.ImportProblem{{Line: 3, Problem: "token: is required"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceImport(ctx, id, store.ImportStep{Done: 1, Replayed: 1, ClaimIDs: []uuid.UUID{c.Claim.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishImport(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	im, err := s.GetImport(ctx, id)
	if err != nil || im.Done != 3 || im.Created != 1 || im.Replayed != 1 || im.Failed != 1 || len(im.ClaimIDs) != 2 ||
		len(im.Problems) != 1 || im.Problems[0].Line != 3 || im.State != "done" || im.FinishedAt == nil {
		t.Fatalf("import: %+v %v", im, err)
	}
	counts, err := s.StatusCounts(ctx, im.ClaimIDs)
	if err != nil || counts[claim.StatusPending] != 1 {
		t.Fatalf("counts: %v %v", counts, err)
	}
	list, err := s.Imports(ctx, 10)
	if err != nil || len(list) != 1 || list[0].FileName != "devices.csv" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := s.GetImport(ctx, uuid.New()); !errors.Is(err, claim.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	// Problems are bounded.
	many := make([]store.ImportProblem, store.MaxImportProblems+10)
	for i := range many {
		many[i] = store.ImportProblem{Line: i + 2, Problem: "bad"}
	}
	if err := s.AdvanceImport(ctx, id, store.ImportStep{Problems: many}); err != nil {
		t.Fatal(err)
	}
	if im, _ := s.GetImport(ctx, id); len(im.Problems) != store.MaxImportProblems {
		t.Fatalf("problems kept: %d", len(im.Problems))
	}
}

// TestConsoleQueriesWith100kClaims fills a database with 100,000 claims (in
// SQL: intake would take minutes) and times the console's queries: each must
// stay well under a page load's budget.
func TestConsoleQueriesWith100kClaims(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a database with 100,000 claims")
	}
	// Not parallel: filling the table loads both cores for seconds, which
	// would starve the timing-sensitive tests of this package (leases of 50 ms).
	ctx := t.Context()
	s := newStore(t, nil)
	_, err := s.Pool().Exec(ctx, `
		INSERT INTO claims (id, status, token_hash, token_hint, has_secret, fingerprint, delivery, device_name,
		                    created_at, updated_at, next_attempt_at, delivered_at, expires_at)
		SELECT gen_random_uuid(), st, sha256(('TOK' || i)::bytea), 'TK' || lpad((i % 97)::text, 2, '0') || '…' || lpad((i % 89)::text, 2, '0'),
		       true, '\x00', 'mqtt', 'Device ' || i, t, t,
		       CASE WHEN st = 'pending' THEN t END, CASE WHEN st = 'delivered' THEN t END, CASE WHEN st = 'delivered' THEN t + interval '1 day' END
		FROM generate_series(1, 100000) i,
		     LATERAL (SELECT (ARRAY['delivered','delivered','delivered','pending','rejected','failed','cancelled'])[1 + i % 7] AS st,
		                     now() - (100000 - i) * interval '1 second' AS t) x;
		INSERT INTO claim_events (claim_id, kind, at) SELECT id, 'accepted', created_at FROM claims;
		INSERT INTO claim_events (claim_id, kind, at) SELECT id, status, updated_at FROM claims WHERE status IN ('delivered', 'rejected', 'failed');
		`)
	if err != nil {
		t.Fatal(err)
	}
	// What autovacuum does after such an insert: statistics, and the
	// visibility map that index-only scans need.
	if _, err := s.Pool().Exec(ctx, `VACUUM (ANALYZE) claims`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `VACUUM (ANALYZE) claim_events`); err != nil {
		t.Fatal(err)
	}
	timed := func(name string, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Generous for a loaded 2-core machine running the race detector;
		// typical figures are in the log.
		d := time.Since(start)
		t.Logf("%-32s %v", name, d.Round(100*time.Microsecond))
		if d > 750*time.Millisecond {
			t.Errorf("%s took %v with 100,000 claims", name, d)
		}
	}
	var first claim.Page
	timed("stats", func() error { _, err := s.Stats(ctx); return err })
	timed("stats again", func() error { _, err := s.Stats(ctx); return err })
	timed("first page", func() (err error) { first, err = s.Search(ctx, claim.Filter{}, 50, ""); return err })
	timed("second page", func() error { _, err := s.Search(ctx, claim.Filter{}, 50, first.NextCursor); return err })
	timed("status failed", func() error { _, err := s.Search(ctx, claim.Filter{Status: claim.StatusFailed}, 50, ""); return err })
	timed("hint as shown", func() error { _, err := s.Search(ctx, claim.Filter{TokenHint: "TK05…07"}, 50, ""); return err })
	timed("device name prefix", func() error {
		p, err := s.Search(ctx, claim.Filter{DeviceName: "device 9999"}, 50, "")
		if err == nil && len(p.Claims) != 11 {
			err = fmt.Errorf("%d claims, want 11", len(p.Claims))
		}
		return err
	})
	timed("a common name prefix", func() error {
		p, err := s.Search(ctx, claim.Filter{DeviceName: "device 1"}, 50, "")
		if err == nil && len(p.Claims) != 50 {
			err = fmt.Errorf("%d claims, want 50", len(p.Claims))
		}
		return err
	})
	timed("a rare name, a day back", func() error {
		_, err := s.Search(ctx, claim.Filter{DeviceName: "nothing like it", From: time.Now().Add(-24 * time.Hour)}, 50, "")
		return err
	})
	timed("recent deliveries", func() error { _, err := s.RecentOutcomes(ctx, []string{"delivered"}, 10); return err })
	timed("recent failures", func() error {
		_, err := s.RecentOutcomes(ctx, []string{"rejected", "failed"}, 10)
		return err
	})
}
