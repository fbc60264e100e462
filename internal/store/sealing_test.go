package store_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/seal"
	"github.com/claimsvc/claimsvc/internal/store"
)

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// openWith opens another store on s's database with the given keyring.
func openWith(t *testing.T, s *store.Store, keys ...[]byte) *store.Store {
	t.Helper()
	sealer, err := seal.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	o, err := store.Open(t.Context(), s.Pool().Config().ConnString(), 4, sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

// sealV1 writes a value as releases before the v2 format did: AES-256-GCM
// with the claim id as the only associated data.
func sealV1(t *testing.T, k, plain []byte, id uuid.UUID) []byte {
	t.Helper()
	block, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := cipher.NewGCM(block)
	out := make([]byte, 1+aead.NonceSize())
	out[0] = 1
	_, _ = rand.Read(out[1:])
	return aead.Seal(out, out[1:], plain, id[:])
}

func nextAttemptIn(t *testing.T, s *store.Store, id uuid.UUID) time.Duration {
	t.Helper()
	c, err := s.Get(t.Context(), id)
	if err != nil || c.NextAttemptAt == nil {
		t.Fatalf("get %s: %+v %v", id, c, err)
	}
	return time.Until(*c.NextAttemptAt)
}

// TestSwappedColumnsAreNotSent is the swap: the sealed token and
// secret of one row exchanged in the database. The claim must not be sent
// (the broker would see the secret as the user name), it must not stop the
// start-up check, and the other claims still go out.
func TestSwappedColumnsAreNotSent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, randomKey(t))
	good, err := s.Create(ctx, req("TOKEN_SWAP_GOOD_01", "good-secret", 0), hold)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := s.Create(ctx, req("TOKEN_SWAP_BAD_001", "bad-secret", 0), hold)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE claims SET token = secret, secret = token WHERE id = $1`, bad.Claim.ID); err != nil {
		t.Fatal(err)
	}

	rep, err := s.CheckDataKey(ctx)
	if err != nil {
		t.Fatalf("one tampered row stopped the start: %v", err)
	}
	if !slices.Contains(rep.Refused, bad.Claim.ID) || rep.Opened != 1 {
		t.Fatalf("start-up report: %+v", rep)
	}

	jobs, err := s.Lease(ctx, 10, time.Minute, nil)
	if !errors.Is(err, claim.ErrCannotDecrypt) || !errors.Is(err, seal.ErrTampered) {
		t.Fatalf("lease: want the tampered claim reported, got %v", err)
	}
	if len(jobs) != 1 || jobs[0].ID != good.Claim.ID || jobs[0].Token != "TOKEN_SWAP_GOOD_01" || string(*jobs[0].SecretKey) != "good-secret" {
		t.Fatalf("lease: %+v", jobs)
	}
	if d := nextAttemptIn(t, s, bad.Claim.ID); d < 50*time.Minute {
		t.Fatalf("the tampered claim is due again in %s, want about an hour", d)
	}
	if c, _ := s.Get(ctx, bad.Claim.ID); c.Status != claim.StatusPending || c.Attempts != 0 {
		t.Fatalf("tampered claim: %+v (must stay pending, uncounted, never failed for it)", c)
	}

	// A value moved to another row does not open there either.
	other, _ := s.Create(ctx, req("TOKEN_SWAP_OTHER01", "o", 0), hold)
	if _, err := s.Pool().Exec(ctx, `UPDATE claims SET token = (SELECT token FROM claims WHERE id = $2) WHERE id = $1`,
		other.Claim.ID, good.Claim.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE claims SET lease_owner = NULL, lease_until = NULL, next_attempt_at = now() WHERE id = $1`, good.Claim.ID); err != nil {
		t.Fatal(err)
	}
	jobs, err = s.Lease(ctx, 10, time.Minute, nil)
	if !errors.Is(err, seal.ErrTampered) || len(jobs) != 1 || jobs[0].ID != good.Claim.ID {
		t.Fatalf("a token copied into another row: %v %+v", err, jobs)
	}
}

// TestRekey rotates the data key and upgrades every older form: values
// sealed with the old key, without a key, in plain text and in the v1 format.
// Before the rekey a store with a key refuses the plain, v1 and unkeyed
// values; after it, a store with only the new key sends them all. A tampered
// row is reported and left; it does not stop the others.
func TestRekey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	oldK, newK := randomKey(t), randomKey(t)
	old := newStore(t, oldK)
	mk := func(tok string) uuid.UUID {
		a, err := old.Create(ctx, req(tok, "secret-"+tok, 0), hold)
		if err != nil {
			t.Fatal(err)
		}
		return a.Claim.ID
	}
	byOld, plain, v1, unkeyed, tampered := mk("TOKEN_REKEY_OLD_01"), mk("TOKEN_REKEY_PLAIN1"), mk("TOKEN_REKEY_V1_001"), mk("TOKEN_REKEY_NOKEY1"), mk("TOKEN_REKEY_BAD_01")
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := old.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`UPDATE claims SET token = '\x00'::bytea || convert_to('TOKEN_REKEY_PLAIN1', 'UTF8'),
		secret = '\x00'::bytea || convert_to('secret-TOKEN_REKEY_PLAIN1', 'UTF8') WHERE id = $1`, plain)
	exec(`UPDATE claims SET token = $2, secret = $3 WHERE id = $1`, v1,
		sealV1(t, oldK, []byte("TOKEN_REKEY_V1_001"), v1), sealV1(t, oldK, []byte("secret-TOKEN_REKEY_V1_001"), v1))
	nokey, _ := seal.New(nil)
	exec(`UPDATE claims SET token = $2, secret = $3 WHERE id = $1`, unkeyed,
		nokey.Seal([]byte("TOKEN_REKEY_NOKEY1"), unkeyed[:], "token"), nokey.Seal([]byte("secret-TOKEN_REKEY_NOKEY1"), unkeyed[:], "secret"))
	exec(`UPDATE claims SET token = secret, secret = token WHERE id = $1`, tampered)

	ring := openWith(t, old, newK, oldK)
	rep, err := ring.CheckDataKey(ctx)
	if err != nil || rep.NotCurrent != 5 {
		t.Fatalf("before: %+v %v", rep, err)
	}
	jobs, err := ring.Lease(ctx, 10, time.Minute, nil)
	if !errors.Is(err, seal.ErrRekey) || len(jobs) != 1 || jobs[0].ID != byOld {
		t.Fatalf("before the rekey, want only the old key's claim sent and the others refused: %v %+v", err, jobs)
	}
	if err := ring.Release(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	exec(`UPDATE claims SET next_attempt_at = now(), lease_owner = NULL, lease_until = NULL`)

	res, err := ring.Rekey(ctx)
	if err != nil || res.Resealed != 4 || !slices.Equal(res.Unopened, []uuid.UUID{tampered}) {
		t.Fatalf("rekey: %+v %v", res, err)
	}
	if again, err := ring.Rekey(ctx); err != nil || again.Resealed != 0 {
		t.Fatalf("second rekey: %+v %v", again, err)
	}

	onlyNew := openWith(t, old, newK)
	if rep, err := onlyNew.CheckDataKey(ctx); err != nil || rep.NotCurrent != 1 || rep.Opened != 4 {
		t.Fatalf("after: %+v %v", rep, err)
	}
	// The tampered row was sealed with the old key, which is gone now.
	jobs, err = onlyNew.Lease(ctx, 10, time.Minute, nil)
	if !errors.Is(err, claim.ErrCannotDecrypt) || len(jobs) != 4 {
		t.Fatalf("after the rekey, with the new key alone: %v %+v", err, jobs)
	}
	for _, j := range jobs {
		if !bytes.HasPrefix([]byte(*j.SecretKey), []byte("secret-")) || string(*j.SecretKey) != "secret-"+string(j.Token) {
			t.Fatalf("claim %s opened to the wrong values", j.ID)
		}
	}
	var inClear int
	if err := old.Pool().QueryRow(ctx, `SELECT count(*) FROM claims WHERE position('TOKEN_REKEY' in encode(token, 'escape')) > 0`).Scan(&inClear); err != nil || inClear != 0 {
		t.Fatalf("%d tokens still in clear after the rekey (%v)", inClear, err)
	}
}
