package store_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/store/storetest"
)

func ptr[T any](v T) *T { return &v }

func newStore(t *testing.T, keys ...[]byte) *store.Store { return storetest.New(t, keys...) }

func req(token, secret string, dur int64) claim.Request {
	r := claim.Request{Token: claim.Token(token)}
	if secret != "" {
		r.SecretKey = ptr(claim.Secret(secret))
	}
	if dur > 0 {
		r.DurationMs = &dur
	}
	return r
}

const hold = 24 * time.Hour

// The outcomes a dispatcher reports, one at a time.
func deliver(t *testing.T, s *store.Store, j claim.Job) error {
	return storetest.Report(t, s, claim.OutcomeOf(j, claim.OutcomeDelivered, nil, 0))
}

func reject(t *testing.T, s *store.Store, j claim.Job, reason string) error {
	return storetest.Report(t, s, claim.OutcomeOf(j, claim.OutcomeRejected, claim.Failure(claim.FailRejected, errors.New(reason)), 0))
}

func retryLater(t *testing.T, s *store.Store, j claim.Job, next time.Duration, reason string) error {
	return storetest.Report(t, s, claim.OutcomeOf(j, claim.OutcomeRetry, errors.New(reason), next))
}

func fail(t *testing.T, s *store.Store, j claim.Job, reason string) error {
	return storetest.Report(t, s, claim.OutcomeOf(j, claim.OutcomeFailed, errors.New(reason), 0))
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	applied, err := s.Migrate(t.Context())
	if err != nil || len(applied) != 0 {
		t.Fatalf("second migrate applied %v, %v", applied, err)
	}
}

func TestCreateAndHoldRules(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)

	first, err := s.Create(ctx, req("TOKEN_AAAAAAAAAA", "s1", 60000), hold)
	if err != nil || first.Replayed || first.Claim.Status != claim.StatusPending || first.Claim.TokenHint != "TOKE…AA" {
		t.Fatalf("create: %+v %v", first, err)
	}

	// Same token + secret + duration while pending: a replay of the first.
	again, err := s.Create(ctx, req("TOKEN_AAAAAAAAAA", "s1", 60000), hold)
	if err != nil || !again.Replayed || again.Claim.ID != first.Claim.ID {
		t.Fatalf("replay: %+v %v", again, err)
	}

	// Another secret: blocked, naming the pending claim.
	_, err = s.Create(ctx, req("TOKEN_AAAAAAAAAA", "s2", 60000), hold)
	var ce *claim.Error
	if !errors.As(err, &ce) || ce.Code != claim.CodeConflict || ce.Blocking == nil || *ce.Blocking != first.Claim.ID {
		t.Fatalf("want conflict naming %s, got %v", first.Claim.ID, err)
	}

	// Another device is not affected.
	if other, err := s.Create(ctx, req("TOKEN_BBBBBBBBBB", "s2", 60000), hold); err != nil || other.Replayed {
		t.Fatalf("other device: %+v %v", other, err)
	}

	// force overrides.
	r := req("TOKEN_AAAAAAAAAA", "s2", 60000)
	r.Force = true
	forced, err := s.Create(ctx, r, hold)
	if err != nil || forced.Replayed || forced.Claim.ID == first.Claim.ID {
		t.Fatalf("force: %+v %v", forced, err)
	}

	list, err := s.ListByDevice(ctx, "TOKEN_AAAAAAAAAA", 10)
	if err != nil || len(list) != 2 || list[0].ID != forced.Claim.ID {
		t.Fatalf("device list: %v %v", list, err)
	}
}

func TestDeliveredClaimHoldsForTheWindow(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	c, _ := s.Create(ctx, req("TOKEN_CCCCCCCCCC", "s1", 0), hold)
	jobs, err := s.Lease(ctx, 10, time.Minute, nil)
	if err != nil || len(jobs) != 1 || jobs[0].ID != c.Claim.ID {
		t.Fatalf("lease: %v %v", jobs, err)
	}
	if err := deliver(t, s, jobs[0]); err != nil {
		t.Fatal(err)
	}
	// Delivered within the hold: a new secret is refused, the same replays.
	if _, err := s.Create(ctx, req("TOKEN_CCCCCCCCCC", "s2", 0), hold); claim.ErrorCode(err) != claim.CodeConflict {
		t.Fatalf("want conflict, got %v", err)
	}
	if r, err := s.Create(ctx, req("TOKEN_CCCCCCCCCC", "s1", 0), hold); err != nil || !r.Replayed || r.Claim.Status != claim.StatusDelivered {
		t.Fatalf("want replay of delivered, got %+v %v", r, err)
	}
	// With a zero hold the delivered claim no longer blocks.
	if r, err := s.Create(ctx, req("TOKEN_CCCCCCCCCC", "s2", 0), 0); err != nil || r.Replayed {
		t.Fatalf("zero hold: %+v %v", r, err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	r := req("TOKEN_DDDDDDDDDD", "s1", 1000)
	r.IdempotencyKey = "key-1"
	a, err := s.Create(ctx, r, hold)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, r, hold)
	if err != nil || !b.Replayed || b.Claim.ID != a.Claim.ID {
		t.Fatalf("replay: %+v %v", b, err)
	}
	r2 := req("TOKEN_EEEEEEEEEE", "s1", 1000)
	r2.IdempotencyKey = "key-1"
	if _, err := s.Create(ctx, r2, hold); claim.ErrorCode(err) != claim.CodeIdemReuse {
		t.Fatalf("want idempotency-key reuse, got %v", err)
	}
}

func TestLeaseIsExclusiveAcrossDispatchers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	const n = 200
	for i := range n {
		if _, err := s.Create(ctx, req(uuid.NewString(), "s", int64(i+1)), hold); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[uuid.UUID]uuid.UUID{}
	var wg sync.WaitGroup
	for range 4 {
		owner := uuid.New()
		wg.Go(func() {
			for range 100 {
				jobs, err := s.Lease(ctx, 7, time.Minute, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					if prev, dup := seen[j.ID]; dup {
						t.Errorf("claim %s leased by %s and %s", j.ID, prev, owner)
					}
					seen[j.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("leased %d of %d", len(seen), n)
	}
}

func TestOutcomesEraseSecretsAndFenceOldOwners(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	key := bytes.Repeat([]byte{9}, 32)
	s := newStore(t, key)
	c, _ := s.Create(ctx, req("TOKEN_FFFFFFFFFF_PLAIN", "SECRET_PLAIN_TEXT", 5000), hold)

	// Encrypted at rest: neither value appears in the row.
	var raw []byte
	if err := s.Pool().QueryRow(ctx, `SELECT convert_to(c::text, 'UTF8') FROM claims c WHERE id = $1`, c.Claim.ID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PLAIN")) || bytes.Contains(raw, []byte("504c41494e")) {
		t.Fatalf("token or secret in clear: %s", raw)
	}

	jobs, _ := s.Lease(ctx, 1, 50*time.Millisecond, nil)
	first := jobs
	if len(jobs) != 1 || jobs[0].Token != "TOKEN_FFFFFFFFFF_PLAIN" || *jobs[0].SecretKey != "SECRET_PLAIN_TEXT" || jobs[0].Attempt != 1 {
		t.Fatalf("lease: %+v", jobs)
	}
	// Still leased: nobody else gets it.
	if j, _ := s.Lease(ctx, 1, time.Minute, nil); len(j) != 0 {
		t.Fatal("leased twice")
	}
	time.Sleep(100 * time.Millisecond)
	if n, err := s.ReapExpiredLeases(ctx); err != nil || n != 1 {
		t.Fatalf("reap: %d %v", n, err)
	}
	jobs, _ = s.Lease(ctx, 1, time.Minute, nil)
	if len(jobs) != 1 || jobs[0].Attempt != 2 || jobs[0].Lease == first[0].Lease {
		t.Fatalf("re-lease: %+v", jobs)
	}
	// A late report under the first lease is fenced off, whoever sends it.
	if err := deliver(t, s, first[0]); !errors.Is(err, claim.ErrLeaseLost) {
		t.Fatalf("stale lease: %v", err)
	}
	if err := retryLater(t, s, first[0], 0, "late"); !errors.Is(err, claim.ErrLeaseLost) {
		t.Fatalf("stale lease: %v", err)
	}
	if err := deliver(t, s, jobs[0]); err != nil {
		t.Fatal(err)
	}
	var tok, sec []byte
	if err := s.Pool().QueryRow(ctx, `SELECT token, secret FROM claims WHERE id = $1`, c.Claim.ID).Scan(&tok, &sec); err != nil || tok != nil || sec != nil {
		t.Fatalf("token/secret not erased after delivery: %v %v %v", tok, sec, err)
	}
	got, _ := s.Get(ctx, c.Claim.ID)
	if got.Status != claim.StatusDelivered || got.DeliveredAt == nil || got.Attempts != 2 || got.NextAttemptAt != nil {
		t.Fatalf("delivered view: %+v", got)
	}
	evs, _ := s.Events(ctx, c.Claim.ID)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind+":"+e.Outcome)
	}
	want := []string{"accepted:", "lease_expired:", "attempt:delivered", "delivered:"}
	if len(kinds) != len(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("events %v, want %v", kinds, want)
		}
	}
}

func TestRejectRetryFailCancel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	rej, _ := s.Create(ctx, req("TOKEN_GGGGGGGGGG", "", 0), hold)
	jobs, _ := s.Lease(ctx, 1, time.Minute, nil)
	if err := reject(t, s, jobs[0], "CONNACK 5: not authorised"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Get(ctx, rej.Claim.ID); c.Status != claim.StatusRejected || c.LastError == "" {
		t.Fatalf("rejected: %+v", c)
	}

	f, _ := s.Create(ctx, req("TOKEN_HHHHHHHHHH", "s", 0), hold)
	jobs, _ = s.Lease(ctx, 1, time.Minute, nil)
	if err := retryLater(t, s, jobs[0], time.Hour, "connection refused"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Get(ctx, f.Claim.ID); c.Status != claim.StatusPending || c.NextAttemptAt == nil || time.Until(*c.NextAttemptAt) < 50*time.Minute {
		t.Fatalf("rescheduled: %+v", c)
	}
	if _, err := s.Retry(ctx, f.Claim.ID, hold, false); claim.ErrorCode(err) != claim.CodeConflict {
		t.Fatalf("retry of pending: %v", err)
	}
	if c, err := s.Cancel(ctx, f.Claim.ID); err != nil || c.Status != claim.StatusCancelled {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	if _, err := s.Cancel(ctx, f.Claim.ID); claim.ErrorCode(err) != claim.CodeConflict {
		t.Fatalf("second cancel: %v", err)
	}

	g, _ := s.Create(ctx, req("TOKEN_IIIIIIIIII", "s", 0), hold)
	jobs, _ = s.Lease(ctx, 1, time.Minute, nil)
	if _, err := s.Cancel(ctx, g.Claim.ID); claim.ErrorCode(err) != claim.CodeConflict {
		t.Fatalf("cancel while being sent: %v", err)
	}
	if err := fail(t, s, jobs[0], "undelivered after 168h"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Retry(ctx, g.Claim.ID, hold, false)
	if err != nil || c.Status != claim.StatusPending {
		t.Fatalf("retry: %+v %v", c, err)
	}
	if _, err := s.Get(ctx, uuid.New()); !errors.Is(err, claim.ErrNotFound) {
		t.Fatalf("missing claim: %v", err)
	}
}

func TestListPaginates(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	for range 5 {
		_, _ = s.Create(ctx, req(uuid.NewString(), "", 0), hold)
	}
	seen := map[uuid.UUID]bool{}
	cursor := ""
	for page := 0; ; page++ {
		p, err := s.List(ctx, claim.StatusPending, 2, cursor)
		if err != nil || page > 5 {
			t.Fatalf("list: %v (page %d)", err, page)
		}
		for _, c := range p.Claims {
			seen[c.ID] = true
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(seen) != 5 {
		t.Fatalf("saw %d claims", len(seen))
	}
	if _, err := s.List(ctx, "", 2, "garbage"); claim.ErrorCode(err) != claim.CodeInvalid {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := store.Open(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1", 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Create(ctx, req("TOKEN_JJJJJJJJJJ", "", 0), hold)
	if claim.ErrorCode(err) != claim.CodeUnavailable {
		t.Fatalf("want unavailable, got %v", err)
	}
	if claim.ErrorCode(s.Ping(ctx)) != claim.CodeUnavailable {
		t.Fatal("ping of a dead database succeeded")
	}
}

func TestListenWakes(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	woke := make(chan struct{}, 10)
	go s.Listen(ctx, func() { woke <- struct{}{} }, func(err error) { t.Log(err) })
	select {
	case <-woke: // the initial wake after LISTEN
	case <-time.After(5 * time.Second):
		t.Fatal("no initial wake")
	}
	if _, err := s.Create(t.Context(), req("TOKEN_KKKKKKKKKK", "", 0), hold); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake after a claim was committed")
	}
}

// A replica without the data key must not fail claims it cannot read: it
// hands them back for one that can.
func TestUnreadableClaimsAreHandedBackNotFailed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	withKey := newStore(t, bytes.Repeat([]byte{3}, 32))
	c, _ := withKey.Create(ctx, req("TOKEN_LLLLLLLLLL", "s", 0), hold)
	noKey, err := store.Open(ctx, withKey.Pool().Config().ConnString(), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer noKey.Close()
	if _, err := noKey.CheckDataKey(ctx); !errors.Is(err, claim.ErrCannotDecrypt) {
		t.Fatalf("start-up check without the key: %v", err)
	}
	if _, err := withKey.CheckDataKey(ctx); err != nil {
		t.Fatalf("start-up check with the key: %v", err)
	}
	jobs, err := noKey.Lease(ctx, 10, time.Minute, nil)
	if !errors.Is(err, claim.ErrCannotDecrypt) || len(jobs) != 0 {
		t.Fatalf("lease without the key: %v %v", jobs, err)
	}
	got, _ := withKey.Get(ctx, c.Claim.ID)
	if got.Status != claim.StatusPending || got.Attempts != 0 || got.NextAttemptAt == nil || time.Until(*got.NextAttemptAt) < 30*time.Second {
		t.Fatalf("after the hand-back: %+v", got)
	}
	// The replica with the key sends it once it is due.
	if _, err := withKey.Pool().Exec(ctx, `UPDATE claims SET next_attempt_at = now()`); err != nil {
		t.Fatal(err)
	}
	if jobs, err := withKey.Lease(ctx, 10, time.Minute, nil); err != nil || len(jobs) != 1 || jobs[0].Token != "TOKEN_LLLLLLLLLL" {
		t.Fatalf("lease with the key: %v %v", jobs, err)
	}
}

// Retrying a failed claim follows the hold rule: ThingsBoard would ignore it
// while a newer claim of the device is cached.
func TestRetryFollowsTheHoldRule(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	a, _ := s.Create(ctx, req("TOKEN_MMMMMMMMMM", "a", 0), hold)
	jobs, _ := s.Lease(ctx, 1, time.Minute, nil)
	if err := fail(t, s, jobs[0], "gave up"); err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, req("TOKEN_MMMMMMMMMM", "b", 0), hold) // failed claims do not block
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ = s.Lease(ctx, 1, time.Minute, nil)
	if err := deliver(t, s, jobs[0]); err != nil {
		t.Fatal(err)
	}
	_, err = s.Retry(ctx, a.Claim.ID, hold, false)
	var ce *claim.Error
	if !errors.As(err, &ce) || ce.Code != claim.CodeConflict || ce.Blocking == nil || *ce.Blocking != b.Claim.ID {
		t.Fatalf("retry within the hold: %v", err)
	}
	// A claim that is not failed is refused for that reason, not by the hold
	// rule (which would name a claim the operator did not ask about).
	if _, err := s.Retry(ctx, b.Claim.ID, hold, false); !errors.As(err, &ce) || ce.Code != claim.CodeConflict || ce.Blocking != nil ||
		!strings.Contains(ce.Message, "not failed") {
		t.Fatalf("retry of a delivered claim: %v", err)
	}
	if c, err := s.Retry(ctx, a.Claim.ID, hold, true); err != nil || c.Status != claim.StatusPending {
		t.Fatalf("forced retry: %+v %v", c, err)
	}
}

// A key answered by a replay belongs to that claim as much as a key that
// created one: reusing it for another request is refused.
func TestIdempotencyKeyAnsweredByAReplayIsRecorded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	first, err := s.Create(ctx, req("TOKEN_NNNNNNNNNN", "a", 0), hold)
	if err != nil {
		t.Fatal(err)
	}
	keyed := req("TOKEN_NNNNNNNNNN", "a", 0)
	keyed.IdempotencyKey = "K1"
	if r, err := s.Create(ctx, keyed, hold); err != nil || !r.Replayed || r.Claim.ID != first.Claim.ID {
		t.Fatalf("replay with a key: %+v %v", r, err)
	}
	other := req("TOKEN_NNNNNNNNNN", "b", 0)
	other.IdempotencyKey, other.Force = "K1", true
	if _, err := s.Create(ctx, other, hold); claim.ErrorCode(err) != claim.CodeIdemReuse {
		t.Fatalf("key reused with another request: %v", err)
	}
	if r, err := s.Create(ctx, keyed, hold); err != nil || !r.Replayed || r.Claim.ID != first.Claim.ID {
		t.Fatalf("the key still answers with the first claim: %+v %v", r, err)
	}
}
