package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/seal"
)

// keyCheckSample is how many of the newest stored claims the start-up check
// tries to open.
const keyCheckSample = 32

// keyCountTimeout bounds the start-up count of claims to rekey.
const keyCountTimeout = 5 * time.Second

// KeyReport is what CheckDataKey found.
type KeyReport struct {
	Sampled    int         // claims with a token among the newest keyCheckSample
	Opened     int         // of those, how many opened
	UnknownKey int         // sealed with a key this process lacks
	Refused    []uuid.UUID // tampered with, or needing claimsvc rekey (at most keyCheckSample)
	NotCurrent int64       // stored claims (all of them) whose values are not sealed with the current key: claimsvc rekey; -1: not counted in time
}

// CheckDataKey opens the newest stored tokens and secrets with this
// process's keyring, so that a replica started with the wrong key (or none)
// refuses to start instead of discovering it claim by claim: it fails when
// none of them opens and some were sealed with a key it lacks. A claim that
// was tampered with, or needs claimsvc rekey, does not stop the start: it is
// reported (and handed back by Lease) while the others are sent.
func (s *Store) CheckDataKey(ctx context.Context) (KeyReport, error) {
	var r KeyReport
	got, err := s.querySealed(ctx, "check data key", `SELECT id, token, secret FROM claims WHERE token IS NOT NULL
		ORDER BY created_at DESC LIMIT $1`, keyCheckSample)
	if err != nil {
		return r, err
	}
	var firstUnknown error
	for _, x := range got {
		r.Sampled++
		_, _, err := s.openJob(x.id, x.token, x.secret)
		switch {
		case err == nil:
			r.Opened++
		case errors.Is(err, seal.ErrUnknownKey):
			r.UnknownKey++
			if firstUnknown == nil {
				firstUnknown = fmt.Errorf("claim %s: %w", x.id, err)
			}
		default:
			r.Refused = append(r.Refused, x.id)
		}
	}
	// The count reads the whole table: bounded, so that a large table slows
	// the start by seconds at most (the count is advice: claimsvc rekey).
	prefix := s.sealer.CurrentPrefix()
	cctx, cancel := context.WithTimeout(ctx, keyCountTimeout)
	defer cancel()
	if err := s.pool.QueryRow(cctx, `SELECT count(*) FROM claims
		WHERE (token IS NOT NULL AND substring(token FROM 1 FOR $2) <> $1)
		   OR (secret IS NOT NULL AND substring(secret FROM 1 FOR $2) <> $1)`, prefix, len(prefix)).Scan(&r.NotCurrent); err != nil {
		if ctx.Err() != nil || !errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return r, dbErr("check data key", err)
		}
		r.NotCurrent = -1
	}
	if r.Opened == 0 && r.UnknownKey > 0 {
		return r, fmt.Errorf("%w: none of the %d newest stored claims opens, and %d were sealed with a data key this process does not have "+
			"(check CLAIMSVC_DATA_KEY / CLAIMSVC_DATA_KEYS): %w", claim.ErrCannotDecrypt, r.Sampled, r.UnknownKey, firstUnknown)
	}
	return r, nil
}
