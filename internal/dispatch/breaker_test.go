package dispatch

import (
	"errors"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
)

var errDown = claim.Failure(claim.FailUnreachable, errors.New("connection refused"))

// The breaker's states, as a table of what happens to it.
func TestBreakerStates(t *testing.T) {
	t.Parallel()
	now := time.Now()
	b := newBreaker("mqtt", []claim.Delivery{claim.DeliveryMQTT}, nil, 2)
	if all, _ := b.allowance(); !all {
		t.Fatal("a new breaker is not closed")
	}
	// A claim refused for its own reasons says the broker is up.
	if tr := b.outcome(claim.Failure(claim.FailRejected, errors.New("CONNACK 5")), 0, now); tr != stayed {
		t.Fatal("a rejection opened the breaker")
	}
	if tr := b.outcome(claim.Failure(claim.FailRefused, errors.New("CONNACK 3")), 0, now); tr != stayed {
		t.Fatal("a refusal opened the breaker")
	}
	// No answer opens it: nothing is leased, the probe starts.
	if tr := b.outcome(errDown, 0, now); tr != opened {
		t.Fatal("no answer did not open the breaker")
	}
	select {
	case <-b.tripped:
	default:
		t.Fatal("the probe was not told")
	}
	if all, n := b.allowance(); all || n != 0 {
		t.Fatalf("an open breaker lets %v/%d through", all, n)
	}
	if open, since := b.isOpen(); !open || !since.Equal(now) {
		t.Fatal("not open since the failure")
	}
	if tr := b.outcome(errDown, 0, now.Add(time.Second)); tr != stayed {
		t.Fatal("a second failure reopened it")
	}
	// The probe's answer: half-open, two trial claims.
	if !b.probed() {
		t.Fatal("probed did not half-open it")
	}
	if all, n := b.allowance(); all || n != 2 {
		t.Fatalf("half-open lets %v/%d through, want 2 trial claims", all, n)
	}
	round := b.leased(2)
	if _, n := b.allowance(); n != 0 {
		t.Fatal("more trial claims than the trial")
	}
	// A trial claim handed back unsent gives its slot back.
	b.untried(round)
	if _, n := b.allowance(); n != 1 {
		t.Fatalf("a trial claim handed back: %d slots, want 1", n)
	}
	b.leased(1)
	// One trial claim finds the broker gone again: open again.
	if tr := b.outcome(errDown, round, now); tr != opened {
		t.Fatal("a failed trial did not reopen the breaker")
	}
	<-b.tripped
	b.probed()
	// The earlier round's trial claims count for nothing in this one.
	b.untried(round)
	if tr := b.outcome(nil, round, now); tr != stayed {
		t.Fatal("a trial claim of an earlier round counted")
	}
	round = b.leased(2)
	if tr := b.outcome(nil, round, now); tr != stayed {
		t.Fatal("closed after one of two trial claims")
	}
	if tr := b.outcome(claim.Failure(claim.FailRejected, errors.New("CONNACK 5")), round, now); tr != closedAgain {
		t.Fatal("two answered trial claims did not close it")
	}
	if all, _ := b.allowance(); !all {
		t.Fatal("not closed")
	}
	// Half-open with nothing to try closes on the probe's word.
	b.outcome(errDown, 0, now)
	<-b.tripped
	b.probed()
	if !b.idle() {
		t.Fatal("an idle half-open breaker did not close")
	}
}
