package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// Finish stores many outcomes in one statement (one transaction), each with
// the same row changes and events as its single-claim method, and fences
// each row by its own lease.
func TestFinishBatchFencesEachRow(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, nil)
	ids := map[string]claim.Claim{}
	for _, name := range []string{"deliv", "rejec", "retry", "faild", "stale"} {
		c, err := s.Create(ctx, req("TOKEN_FIN_"+name, "k", 1000), hold)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = c.Claim
	}
	jobs, err := s.Lease(ctx, 10, time.Minute, nil)
	if err != nil || len(jobs) != 5 {
		t.Fatalf("lease: %d %v", len(jobs), err)
	}
	job := func(name string) claim.Job {
		for _, j := range jobs {
			if j.ID == ids[name].ID {
				return j
			}
		}
		t.Fatalf("%s not leased", name)
		return claim.Job{}
	}
	stale := job("stale")
	stale.Lease = job("deliv").Lease // another lease: refused

	outs := []claim.Outcome{
		claim.OutcomeOf(job("deliv"), claim.OutcomeDelivered, nil, 0),
		claim.OutcomeOf(stale, claim.OutcomeDelivered, nil, 0),
		claim.OutcomeOf(job("rejec"), claim.OutcomeRejected, claim.Failure(claim.FailRejected, errors.New("CONNACK 5")), 0),
		claim.OutcomeOf(job("retry"), claim.OutcomeRetry, claim.Failure(claim.FailUnreachable, errors.New("refused")), time.Hour),
		claim.OutcomeOf(job("faild"), claim.OutcomeFailed, errors.New("gave up"), 0),
	}
	lost, err := s.Finish(ctx, outs)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, claim.ErrLeaseLost, nil, nil, nil} {
		if !errors.Is(lost[i], want) || (want == nil && lost[i] != nil) {
			t.Fatalf("outcome %d: %v, want %v", i, lost[i], want)
		}
	}

	check := func(name string, status claim.Status, events ...string) claim.Claim {
		t.Helper()
		c, err := s.Get(ctx, ids[name].ID)
		if err != nil || c.Status != status {
			t.Fatalf("%s: %+v %v, want %s", name, c, err, status)
		}
		evs, _ := s.Events(ctx, c.ID)
		var got []string
		for _, e := range evs {
			got = append(got, e.Kind+":"+e.Outcome+":"+e.Detail)
		}
		if len(got) != len(events) {
			t.Fatalf("%s events %q, want %q", name, got, events)
		}
		for i := range events {
			if got[i] != events[i] {
				t.Fatalf("%s events %q, want %q", name, got, events)
			}
		}
		return c
	}
	if c := check("deliv", claim.StatusDelivered, "accepted::", "attempt:delivered:", "delivered::"); c.DeliveredAt == nil || c.LastError != "" {
		t.Fatalf("delivered: %+v", c)
	}
	check("stale", claim.StatusPending, "accepted::") // untouched: still leased under its own lease
	if c := check("rejec", claim.StatusRejected, "accepted::", "attempt:rejected:CONNACK 5", "rejected::CONNACK 5"); c.LastError != "CONNACK 5" {
		t.Fatalf("rejected: %+v", c)
	}
	if c := check("retry", claim.StatusPending, "accepted::", "attempt:retry:refused"); c.NextAttemptAt == nil || time.Until(*c.NextAttemptAt) < 50*time.Minute {
		t.Fatalf("retry: %+v", c)
	}
	check("faild", claim.StatusFailed, "accepted::", "failed::gave up")

	// Token and secret: erased when delivered or rejected, kept when failed
	// (an operator may retry) and while pending.
	for name, erased := range map[string]bool{"deliv": true, "rejec": true, "retry": false, "faild": false, "stale": false} {
		var tok, sec []byte
		if err := s.Pool().QueryRow(ctx, `SELECT token, secret FROM claims WHERE id = $1`, ids[name].ID).Scan(&tok, &sec); err != nil {
			t.Fatal(err)
		}
		if erased != (tok == nil && sec == nil) {
			t.Fatalf("%s: token/secret erased %v, want %v", name, tok == nil, erased)
		}
	}
	// Each failure's kind is kept beside its text.
	for name, want := range map[string]string{"deliv": "", "rejec": "rejected", "retry": "unreachable", "faild": "transient"} {
		var kind string
		if err := s.Pool().QueryRow(ctx, `SELECT coalesce(last_error_kind, '') FROM claims WHERE id = $1`, ids[name].ID).Scan(&kind); err != nil {
			t.Fatal(err)
		}
		if kind != want {
			t.Fatalf("%s: last_error_kind %q, want %q", name, kind, want)
		}
	}
	// One statement: every row written by one transaction.
	var xids int
	if err := s.Pool().QueryRow(ctx, `SELECT count(DISTINCT xmin::text) FROM claim_events WHERE kind <> 'accepted'`).Scan(&xids); err != nil || xids != 1 {
		t.Fatalf("events written by %d transactions (%v), want 1", xids, err)
	}
	// The stale outcome's claim is still leased: its own lease can report it.
	if err := deliver(t, s, job("stale")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, nil); err != nil {
		t.Fatal(err)
	}
}
