package http

import (
	"net/http"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/wire"
)

// view is the public face of a claim (wire.Claim): never the token or the
// secret.
func view(c claim.Claim) wire.Claim {
	v := wire.Claim{
		ID: c.ID.String(), Status: string(c.Status), Delivery: string(c.Delivery), DeviceName: nonEmpty(c.DeviceName),
		TokenHint: c.TokenHint, HasSecret: c.HasSecret, DurationMs: c.DurationMs, Attempts: c.Attempts,
		LastError: nonEmpty(c.LastError), CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC(),
		NextAttemptAt: utc(c.NextAttemptAt), DeliveredAt: utc(c.DeliveredAt), ExpiresAt: utc(c.ExpiresAt),
		ClaimedAt: utc(c.ClaimedAt), CustomerID: nonEmpty(c.CustomerID),
	}
	return v
}

func views(cs []claim.Claim) []wire.Claim {
	out := make([]wire.Claim, len(cs))
	for i, c := range cs {
		out[i] = view(c)
	}
	return out
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// viewsFor is views for the device routes: a caller without an API key (a
// device reading its own claims, or someone presenting a guessed token) does
// not see lastError, which names the broker's address and internal errors
// (docs/security.md §1.2). The firmware reads only the status.
func viewsFor(r *http.Request, cs ...claim.Claim) []wire.Claim {
	out := views(cs)
	if !keyHolder(r) {
		for i := range out {
			out[i].LastError = nil
		}
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
