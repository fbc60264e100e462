package http

import (
	"strconv"
	"testing"
	"time"
)

// TestFullLimiterLetsNewKeysThroughUncounted: once a window has counted
// limiterMaxKeys keys, a key not yet counted passes uncounted (a flood of
// made-up tokens must not shut out every other device), and a key already
// counted is still held to its limit.
func TestFullLimiterLetsNewKeysThroughUncounted(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(Rate{N: 2, Per: time.Minute}, "test")
	l.now, l.start = func() time.Time { return now }, now
	for i := range limiterMaxKeys {
		l.take("made-up:" + strconv.Itoa(i))
	}
	l.take("made-up:0") // its second request: at its limit now
	if q := l.take("made-up:0"); q.allowed {
		t.Fatal("a key over its limit passed once the table was full")
	}
	for range 5 {
		q := l.take("device:new")
		if !q.allowed || !q.uncounted || q.remaining != 2 {
			t.Fatalf("a new key in a full table: %+v", q)
		}
		l.giveBack("device:new", q) // nothing to give back
	}
	if len(l.counts) != limiterMaxKeys {
		t.Fatalf("the table grew past its bound: %d keys", len(l.counts))
	}
	// The next window starts empty: the new key is counted again.
	now = now.Add(time.Minute)
	if q := l.take("device:new"); !q.allowed || q.uncounted || q.remaining != 1 {
		t.Fatalf("next window: %+v", q)
	}
}
