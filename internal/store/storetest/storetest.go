// Package storetest opens a migrated claim store on a fresh database of the
// real local PostgreSQL, for tests of every package above the store.
package storetest

import (
	"testing"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/seal"
	"github.com/claimsvc/claimsvc/internal/store"
)

// New returns a migrated store on a new database, closed when the test ends.
// A nil key stores tokens and secrets in plain text.
func New(tb testing.TB, key []byte) *store.Store {
	tb.Helper()
	sealer, err := seal.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := store.Open(tb.Context(), pgtest.NewDatabase(tb), 16, sealer)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	if _, err := s.Migrate(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Report records one attempt's outcome as the dispatcher would, and returns
// claim.ErrLeaseLost when the store refused it for that reason.
func Report(tb testing.TB, s *store.Store, o claim.Outcome) error {
	tb.Helper()
	lost, err := s.Finish(tb.Context(), []claim.Outcome{o})
	if err != nil {
		return err
	}
	return lost[0]
}
