package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/store"
)

func newGroupStore(t *testing.T, g store.GroupCommit) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), pgtest.NewDatabase(t), 8, nil, store.WithGroupCommit(g))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// concurrently runs f(i) for i in [0, n) at once and waits.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() { <-start; f(i) })
	}
	close(start)
	wg.Wait()
}

func TestConcurrentCreatesShareTransactions(t *testing.T) {
	t.Parallel()
	s := newGroupStore(t, store.GroupCommit{Committers: 1, MaxBatch: 16})
	const n = 96
	ids := make([]uuid.UUID, n)
	concurrently(n, func(i int) {
		c, err := s.Create(t.Context(), req(fmt.Sprintf("GROUP_TOKEN_%04d", i), "s", 60000), hold)
		if err != nil || c.Replayed || c.Claim.Status != claim.StatusPending {
			t.Errorf("create %d: %+v %v", i, c, err)
		}
		ids[i] = c.Claim.ID
	})
	var claims, events, txns int
	err := s.Pool().QueryRow(t.Context(), `SELECT (SELECT count(*) FROM claims), (SELECT count(*) FROM claim_events WHERE kind = 'accepted'),
		(SELECT count(DISTINCT xmin::text) FROM claims)`).Scan(&claims, &events, &txns)
	if err != nil || claims != n || events != n {
		t.Fatalf("stored %d claims, %d accepted events: %v", claims, events, err)
	}
	// Rows inserted by one transaction share its xmin.
	if txns >= n || txns < n/16 {
		t.Fatalf("%d claims in %d transactions: requests were not grouped (or groups exceeded MaxBatch)", n, txns)
	}
	seen := map[uuid.UUID]bool{}
	for i, id := range ids {
		got, err := s.Get(t.Context(), id)
		if err != nil || seen[id] || got.TokenHint != "GROU…"+fmt.Sprintf("%02d", i%100) {
			t.Fatalf("claim %d: %+v %v (duplicate %v)", i, got, err, seen[id])
		}
		seen[id] = true
	}
}

func TestConcurrentClaimsOfOneDevice(t *testing.T) {
	t.Parallel()
	for _, g := range []store.GroupCommit{{Committers: 1}, {Committers: 4, MaxBatch: 3}} {
		t.Run(fmt.Sprintf("committers=%d", g.Committers), func(t *testing.T) {
			s := newGroupStore(t, g)
			const n = 24
			// Different secrets for one device: exactly one is stored, every
			// other request is refused naming it.
			type out struct {
				c   claim.Accepted
				err error
			}
			outs := make([]out, n)
			concurrently(n, func(i int) {
				c, err := s.Create(t.Context(), req("ONE_DEVICE_TOKEN", fmt.Sprintf("secret-%d", i), 60000), hold)
				outs[i] = out{c, err}
			})
			var winner uuid.UUID
			for _, o := range outs {
				if o.err == nil {
					if winner != uuid.Nil {
						t.Fatalf("two claims stored for one device: %s and %s", winner, o.c.Claim.ID)
					}
					winner = o.c.Claim.ID
				}
			}
			for i, o := range outs {
				var ce *claim.Error
				conflict := errors.As(o.err, &ce) && ce.Code == claim.CodeConflict && ce.Blocking != nil && *ce.Blocking == winner
				if o.err != nil && !conflict {
					t.Fatalf("request %d: want a conflict naming %s, got %v", i, winner, o.err)
				}
			}
			// The same request many times at once: one claim, the rest replays of it.
			concurrently(n, func(i int) {
				c, err := s.Create(t.Context(), req("SAME_REQUEST_TOKEN", "s", 60000), hold)
				outs[i] = out{c, err}
			})
			created := 0
			for _, o := range outs {
				if o.err != nil || o.c.Claim.ID != outs[0].c.Claim.ID {
					t.Fatalf("same request: %+v %v", o.c, o.err)
				}
				if !o.c.Replayed {
					created++
				}
			}
			if created != 1 {
				t.Fatalf("%d of %d identical requests created a claim", created, n)
			}
		})
	}
}

func TestIdempotencyKeyRaceAcrossDevices(t *testing.T) {
	t.Parallel()
	s := newGroupStore(t, store.GroupCommit{Committers: 4, MaxBatch: 2})
	for round := range 10 {
		key := fmt.Sprintf("race-%d", round)
		errs := make([]error, 8)
		concurrently(8, func(i int) {
			r := req(fmt.Sprintf("RACE_DEVICE_%d_%d", round, i), "s", 1000)
			r.IdempotencyKey = key
			_, errs[i] = s.Create(t.Context(), r, hold)
		})
		ok := 0
		for _, err := range errs {
			switch claim.ErrorCode(err) {
			case claim.CodeIdemReuse:
			default:
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				ok++
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d requests stored under one Idempotency-Key", round, ok)
		}
	}
}

// One request the database refuses fails alone; its group's others commit.
func TestOneBadRequestFailsAlone(t *testing.T) {
	t.Parallel()
	s := newGroupStore(t, store.GroupCommit{Committers: 1, MaxBatch: 64})
	errs := make([]error, 32)
	concurrently(32, func(i int) {
		r := req(fmt.Sprintf("POISON_TOKEN_%02d", i), "s", 60000)
		if i == 7 {
			r.DurationMs = ptr(int64(0)) // breaks the table's CHECK; the validator would refuse it
		}
		_, errs[i] = s.Create(t.Context(), r, hold)
	})
	for i, err := range errs {
		if (i == 7) != (err != nil) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if claim.ErrorCode(errs[7]) != claim.CodeInternal {
		t.Fatalf("bad request: %v", errs[7])
	}
}

func TestCommitFailureFailsTheGroup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	concurrently(16, func(i int) {
		if _, err := s.Create(ctx, req(fmt.Sprintf("DEAD_DB_TOKEN_%02d", i), "", 0), hold); claim.ErrorCode(err) != claim.CodeUnavailable {
			t.Errorf("request %d: want unavailable, got %v", i, err)
		}
	})
}

func TestCreateAfterCloseIsUnavailable(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.Context(), pgtest.NewDatabase(t), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Create(t.Context(), req("CLOSED_TOKEN_0001", "", 0), hold); claim.ErrorCode(err) != claim.CodeUnavailable {
		t.Fatalf("want unavailable, got %v", err)
	}
}

// CreateBatch applies the rules in input order, within the batch too.
func TestCreateBatchRulesInOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	pre, err := s.Create(ctx, req("BATCH_HELD_TOKEN", "old", 0), hold)
	if err != nil {
		t.Fatal(err)
	}
	keyed := func(r claim.Request, key string) claim.Request { r.IdempotencyKey = key; return r }
	forced := func(r claim.Request) claim.Request { r.Force = true; return r }
	reqs := []claim.Request{
		0: req("BATCH_TOKEN_AAAA", "s1", 1000),
		1: req("BATCH_TOKEN_AAAA", "s1", 1000),         // replay of 0
		2: req("BATCH_TOKEN_AAAA", "s2", 1000),         // blocked by 0
		3: forced(req("BATCH_TOKEN_AAAA", "s2", 1000)), // forced: new
		4: req("BATCH_TOKEN_AAAA", "s2", 1000),         // replay of 3 (now the newest)
		5: keyed(req("BATCH_TOKEN_BBBB", "s", 0), "k1"),
		6: keyed(req("BATCH_TOKEN_CCCC", "s", 0), "k1"), // key reused with another request
		7: keyed(req("BATCH_TOKEN_BBBB", "s", 0), "k1"), // replay of 5
		8: req("BATCH_HELD_TOKEN", "old", 0),            // replay of the stored claim
		9: req("BATCH_HELD_TOKEN", "new", 0),            // blocked by the stored claim
	}
	res, err := s.CreateBatch(ctx, reqs, hold)
	if err != nil || len(res) != len(reqs) {
		t.Fatalf("batch: %v %v", res, err)
	}
	code := func(i int) claim.Code {
		if res[i].Err == nil {
			return ""
		}
		return claim.ErrorCode(res[i].Err)
	}
	blocking := func(i int) uuid.UUID {
		var e *claim.Error
		if !errors.As(res[i].Err, &e) || e.Blocking == nil {
			return uuid.Nil
		}
		return *e.Blocking
	}
	switch {
	case code(0) != "" || res[0].Replayed || res[0].Claim.Status != claim.StatusPending:
		t.Fatalf("0: %+v", res[0])
	case code(1) != "" || !res[1].Replayed || res[1].Claim.ID != res[0].Claim.ID:
		t.Fatalf("1: %+v", res[1])
	case code(2) != claim.CodeConflict || blocking(2) != res[0].Claim.ID:
		t.Fatalf("2: %+v", res[2])
	case code(3) != "" || res[3].Replayed || res[3].Claim.ID == res[0].Claim.ID:
		t.Fatalf("3: %+v", res[3])
	case code(4) != "" || !res[4].Replayed || res[4].Claim.ID != res[3].Claim.ID:
		t.Fatalf("4: %+v", res[4])
	case code(5) != "" || res[5].Replayed:
		t.Fatalf("5: %+v", res[5])
	case code(6) != claim.CodeIdemReuse:
		t.Fatalf("6: %+v", res[6])
	case code(7) != "" || !res[7].Replayed || res[7].Claim.ID != res[5].Claim.ID:
		t.Fatalf("7: %+v", res[7])
	case code(8) != "" || !res[8].Replayed || res[8].Claim.ID != pre.Claim.ID:
		t.Fatalf("8: %+v", res[8])
	case code(9) != claim.CodeConflict || blocking(9) != pre.Claim.ID:
		t.Fatalf("9: %+v", res[9])
	}
	// Later single requests see the batch's claims: the newest of the device
	// is the forced one.
	if c, err := s.Create(ctx, req("BATCH_TOKEN_AAAA", "s2", 1000), hold); err != nil || !c.Replayed || c.Claim.ID != res[3].Claim.ID {
		t.Fatalf("after batch: %+v %v", c, err)
	}
	var n int
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM claims`).Scan(&n)
	if n != 4 { // pre, 0, 3, 5
		t.Fatalf("%d claims stored, want 4", n)
	}
}

// A batch of more devices than per-device locks allows runs under the
// exclusive intake lock, concurrently with small groups, without deadlock.
func TestLargeBatchesAndSmallGroupsTogether(t *testing.T) {
	t.Parallel()
	s := newGroupStore(t, store.GroupCommit{Committers: 4, MaxBatch: 8})
	var wg sync.WaitGroup
	for b := range 3 {
		wg.Go(func() {
			reqs := make([]claim.Request, 300)
			for i := range reqs {
				reqs[i] = req(fmt.Sprintf("BIG_%d_%04d_TOKEN", b, i), "s", 1000)
			}
			res, err := s.CreateBatch(t.Context(), reqs, hold)
			if err != nil {
				t.Error(err)
				return
			}
			for i, r := range res {
				if r.Err != nil || r.Replayed {
					t.Errorf("batch %d item %d: %+v", b, i, r)
				}
			}
		})
	}
	concurrently(48, func(i int) {
		if _, err := s.Create(t.Context(), req(fmt.Sprintf("SMALL_%04d_TOKEN", i%12), fmt.Sprint(i%12), 1000), hold); err != nil {
			t.Errorf("small %d: %v", i, err)
		}
	})
	wg.Wait()
	var n int
	_ = s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM claims`).Scan(&n)
	if n != 900+12 {
		t.Fatalf("%d claims stored, want %d", n, 912)
	}
}
