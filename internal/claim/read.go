package claim

import "time"

// Accepted is the outcome of an intake request that was not refused: the
// claim that answers it, and whether that claim was stored earlier (a replay:
// nothing new was stored).
type Accepted struct {
	Claim    Claim
	Replayed bool
}

// ItemResult is the outcome of one request of a batch: Accepted, or Err (a
// *Error: conflict or Idempotency-Key reuse) for this request alone.
type ItemResult struct {
	Accepted
	Err error
}

// Page is one page of a claim listing, newest first.
type Page struct {
	Claims     []Claim
	NextCursor string // "" on the last page
}

// Event is one entry of a claim's audit trail. It never holds a token or a
// secret.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Attempt *int      `json:"attempt,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
	Detail  string    `json:"detail,omitempty"`
	// Actor is who asked for the change when a person did it through the
	// operator console: "console", or "console:" and the first 8 hex digits
	// of their API key's SHA-256 (see WithActor). Empty: the API or
	// claimsvc itself.
	Actor string `json:"actor,omitempty"`
}
