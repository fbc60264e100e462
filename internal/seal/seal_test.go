package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	enc, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := New(nil)
	owner := []byte("claim-1")
	secret := []byte("TOP_SECRET_TOKEN")

	sealed := enc.Seal(secret, owner)
	if bytes.Contains(sealed, secret) {
		t.Fatal("ciphertext contains the plaintext")
	}
	if got, err := enc.Open(sealed, owner); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := enc.Open(sealed, []byte("claim-2")); err == nil {
		t.Fatal("value opened under another owner")
	}
	if _, err := plain.Open(sealed, owner); !errors.Is(err, ErrNoKey) {
		t.Fatalf("want ErrNoKey, got %v", err)
	}
	// Rows written before a key was configured stay readable.
	if got, err := enc.Open(plain.Seal(secret, owner), owner); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("plaintext row: %q %v", got, err)
	}
	other := make([]byte, 32)
	wrong, _ := New(other)
	if _, err := wrong.Open(sealed, owner); err == nil {
		t.Fatal("opened with the wrong key")
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
