package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
)

func newKeyBytes(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func mustNew(t *testing.T, keys ...[]byte) *Sealer {
	t.Helper()
	s, err := New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sealV1 builds a value in the legacy v1 format (owner as the only
// associated data), as releases before the v2 format wrote it.
func sealV1(t *testing.T, k, plain, owner []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := cipher.NewGCM(block)
	out := make([]byte, 1+aead.NonceSize())
	out[0] = versionGCMv1
	_, _ = rand.Read(out[1:])
	return aead.Seal(out, out[1:], plain, owner)
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	enc := mustNew(t, newKeyBytes(t))
	owner := []byte("claim-1")
	secret := []byte("TOP_SECRET_TOKEN")

	sealed := enc.Seal(secret, owner, "token")
	if bytes.Contains(sealed, secret) {
		t.Fatal("ciphertext contains the plaintext")
	}
	if !enc.Current(sealed) || !enc.Encrypts() || enc.Keys() != 1 {
		t.Fatal("a fresh value is not current")
	}
	if got, err := enc.Open(sealed, owner, "token"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := enc.Open(sealed, []byte("claim-2"), "token"); !errors.Is(err, ErrTampered) {
		t.Fatalf("value opened under another owner: %v", err)
	}
	wrong := mustNew(t, newKeyBytes(t))
	if _, err := wrong.Open(sealed, owner, "token"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("another keyring: want ErrUnknownKey, got %v", err)
	}
}

// The swap: the sealed token and secret of one row, exchanged, must
// not open (the broker saw the secret as the user name).
func TestColumnsCannotBeSwapped(t *testing.T) {
	t.Parallel()
	for _, s := range []*Sealer{mustNew(t, newKeyBytes(t)), mustNew(t)} {
		owner := []byte("0123456789abcdef")
		tok := s.Seal([]byte("THE_TOKEN"), owner, "token")
		sec := s.Seal([]byte("the-secret"), owner, "secret")
		if _, err := s.Open(sec, owner, "token"); !errors.Is(err, ErrTampered) {
			t.Fatalf("encrypts=%t: secret opened as the token: %v", s.Encrypts(), err)
		}
		if _, err := s.Open(tok, owner, "secret"); !errors.Is(err, ErrTampered) {
			t.Fatalf("encrypts=%t: token opened as the secret: %v", s.Encrypts(), err)
		}
		// A flipped bit anywhere (header included) is tampering.
		for i := range tok {
			bad := bytes.Clone(tok)
			bad[i] ^= 0x01
			if _, err := s.Open(bad, owner, "token"); err == nil {
				t.Fatalf("encrypts=%t: value with byte %d flipped opened", s.Encrypts(), i)
			}
		}
	}
}

func TestKeyringRotation(t *testing.T) {
	t.Parallel()
	oldK, newK := newKeyBytes(t), newKeyBytes(t)
	old := mustNew(t, oldK)
	ring := mustNew(t, newK, oldK) // new key seals, both open
	owner := []byte("claim")
	byOld := old.Seal([]byte("tok"), owner, "token")
	if got, err := ring.Open(byOld, owner, "token"); err != nil || string(got) != "tok" {
		t.Fatalf("old key's value: %q %v", got, err)
	}
	if ring.Current(byOld) {
		t.Fatal("a value sealed with the old key is current")
	}
	byNew := ring.Seal([]byte("tok"), owner, "token")
	if !ring.Current(byNew) {
		t.Fatal("new value not current")
	}
	// A replica still on the old keyring hands it back (unknown key), it
	// does not call it tampered.
	if _, err := old.Open(byNew, owner, "token"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old replica: %v", err)
	}
	if _, err := New([][]byte{oldK, oldK}); err == nil {
		t.Fatal("a key twice in the keyring accepted")
	}
	if _, err := New([][]byte{oldK[:16]}); err == nil {
		t.Fatal("a short key accepted")
	}
}

// Once a key is set, plain text, the v1 format and values sealed without a
// key are refused (ErrRekey); the legacy view used by `claimsvc rekey` opens
// them.
func TestPlaintextAndV1RefusedOnceAKeyIsSet(t *testing.T) {
	t.Parallel()
	k := newKeyBytes(t)
	keyed := mustNew(t, k)
	unkeyed := mustNew(t)
	owner := []byte("0123456789abcdef")
	plain := append([]byte{versionPlain}, "PLAIN_TOKEN"...)
	v1 := sealV1(t, k, []byte("V1_TOKEN"), owner)
	noKey := unkeyed.Seal([]byte("UNKEYED_TOKEN"), owner, "token")

	for name, v := range map[string][]byte{"plain": plain, "v1": v1, "unkeyed": noKey} {
		if _, err := keyed.Open(v, owner, "token"); !errors.Is(err, ErrRekey) {
			t.Errorf("%s: keyed sealer: want ErrRekey, got %v", name, err)
		}
		if _, err := keyed.WithLegacy().Open(v, owner, "token"); err != nil {
			t.Errorf("%s: legacy view: %v", name, err)
		}
	}
	// Without a key: the unkeyed and plain values open (rows written
	// before), a v1 value needs its key.
	if got, err := unkeyed.Open(plain, owner, "token"); err != nil || string(got) != "PLAIN_TOKEN" {
		t.Fatalf("unkeyed, plain: %q %v", got, err)
	}
	if _, err := unkeyed.Open(v1, owner, "token"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unkeyed, v1: %v", err)
	}
	if unkeyed.Encrypts() || unkeyed.Keys() != 0 {
		t.Fatal("the unkeyed sealer claims to encrypt")
	}
	// Even without a key, nothing is stored in clear.
	if bytes.Contains(noKey, []byte("UNKEYED_TOKEN")) {
		t.Fatal("unkeyed value holds the plaintext")
	}
	if _, err := keyed.Open([]byte{9, 1, 2}, owner, "token"); !errors.Is(err, ErrTampered) {
		t.Fatalf("unknown version: %v", err)
	}
	if _, err := keyed.Open(nil, owner, "token"); !errors.Is(err, ErrTampered) {
		t.Fatalf("empty: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	for _, s := range []string{base64.StdEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key)} {
		if k, err := ParseKey(s); err != nil || !bytes.Equal(k, key) {
			t.Fatalf("ParseKey(%q) = %v, %v", s, k, err)
		}
	}
	if k, err := ParseKey(""); k != nil || err != nil {
		t.Fatal("empty key")
	}
	if _, err := ParseKey(base64.StdEncoding.EncodeToString(key[:16])); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := ParseKey("!!!"); err == nil {
		t.Fatal("garbage accepted")
	}
}
