package store

import (
	"testing"
	"testing/fstest"

	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/migrations"
)

// Upgrading a database that has claims with Idempotency-Keys under 0001
// keeps those keys working after 0002 moves them to their own table.
func TestMigration0002KeepsExistingKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, pgtest.NewDatabase(t), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, _ := migrations.FS.ReadFile("0001_claims.sql")
	if _, err := migrate(ctx, s, fstest.MapFS{"0001_claims.sql": {Data: first}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO claims (id, token_hash, token_hint, has_secret, fingerprint, idempotency_key, next_attempt_at, token)
		VALUES ('01a20000-0000-7000-8000-000000000001', '\x01', '…', false, '\x02', 'old-key', now(), '\x00')`); err != nil {
		t.Fatal(err)
	}
	applied, err := s.Migrate(ctx)
	if err != nil || len(applied) == 0 || applied[0] != "0002_idempotency_keys.sql" {
		t.Fatalf("upgrade: %v %v", applied, err)
	}
	var claimID string
	if err := s.pool.QueryRow(ctx, `SELECT claim_id::text FROM idempotency_keys WHERE key = 'old-key'`).Scan(&claimID); err != nil ||
		claimID != "01a20000-0000-7000-8000-000000000001" {
		t.Fatalf("old key after the upgrade: %q %v", claimID, err)
	}
}
