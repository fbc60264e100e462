// Package storetest opens a migrated claim store on a fresh database of the
// real local PostgreSQL, for tests of every package above the store. Each
// database is a clone of a template migrated once per schema version, so a
// test pays for a file copy, not for the migrations.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"sort"
	"testing"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/seal"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/migrations"
)

// New returns a migrated store on a new database, closed when the test ends.
// keys is the keyring (the first seals); none seals with the published
// unkeyed key, as the demo does.
func New(tb testing.TB, keys ...[]byte) *store.Store {
	tb.Helper()
	sealer, err := seal.New(keys)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := store.Open(tb.Context(), MigratedURL(tb), 16, sealer)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// MigratedURL returns the URL of a new database that has the current schema,
// dropped when the test ends.
func MigratedURL(tb testing.TB) string {
	tb.Helper()
	tmpl := pgtest.Template(tb, schemaKey(tb), func(ctx context.Context, url string) error {
		s, err := store.Open(ctx, url, 2, nil)
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Migrate(ctx)
		return err
	})
	return pgtest.Clone(tb, tmpl)
}

// schemaKey is a digest of the embedded migrations: a new migration makes a
// new template.
func schemaKey(tb testing.TB) string {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			tb.Fatal(err)
		}
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
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
