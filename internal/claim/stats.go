package claim

import "time"

// Stats is how the claims stand right now: the counts by status and the
// backlog (GET /stats, the console's overview, `claimsvc status`).
type Stats struct {
	At     time.Time        // the database's clock when counted
	Counts map[Status]int64 // every status, zero included
	Total  int64
	// The backlog: pending claims, those due for an attempt now, those whose
	// last attempt failed, and the oldest one's pending_since (nil: none).
	Pending            int64
	Due                int64
	WithErrors         int64
	OldestPendingSince *time.Time
}

// OldestPendingAge is how long the oldest pending claim has waited, or 0.
func (s Stats) OldestPendingAge() time.Duration {
	if s.OldestPendingSince == nil {
		return 0
	}
	return max(0, s.At.Sub(*s.OldestPendingSince))
}

// Filter narrows a listing of claims (the console's list). Zero fields do
// not filter.
type Filter struct {
	Status Status
	// TokenHint is a token hint as shown ("DHT1…EN") or its first 1 to 4
	// characters.
	TokenHint string
	// DeviceName matches names that start with it, in any case.
	DeviceName string
	From, To   time.Time // created at or after From, before To
}

// EventOf is an event with the claim it belongs to, for lists of recent
// outcomes.
type EventOf struct {
	Event
	Claim Claim
}

// Printable reports whether s is valid UTF-8 without control characters (the
// rule for secrets and device names), for checks before a request is made.
func Printable(s string) bool { return printable(s) }
