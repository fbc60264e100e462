// Package seal protects device tokens and claim secrets at rest.
//
// Every stored value starts with a version byte, so rows written before a
// data key was configured stay readable after it is:
//
//	0x00 | plaintext                      (no CLAIMSVC_DATA_KEY)
//	0x01 | 12-byte nonce | AES-256-GCM ciphertext+tag
//
// The claim id is the GCM additional data: a sealed value copied into another
// row does not open there.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

const (
	versionPlain byte = 0
	versionGCM   byte = 1
)

// ErrNoKey is returned when a value was sealed with a key this process lacks.
var ErrNoKey = errors.New("seal: value is encrypted but no data key is configured (CLAIMSVC_DATA_KEY)")

// Sealer seals and opens values bound to an owner id. The zero value stores
// plaintext; use New for encryption.
type Sealer struct {
	aead cipher.AEAD
}

// ParseKey decodes a base64 (standard or URL, padded or not) 32-byte key.
// An empty string means no key.
func ParseKey(b64 string) ([]byte, error) {
	if b64 == "" {
		return nil, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(b64); err == nil {
			if len(k) != 32 {
				return nil, fmt.Errorf("data key: want 32 bytes after base64 decoding, got %d", len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("data key: not valid base64 (generate one with: openssl rand -base64 32)")
}

// New returns a Sealer. With a nil key it stores plaintext.
func New(key []byte) (*Sealer, error) {
	if key == nil {
		return &Sealer{}, nil
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Encrypts reports whether values are encrypted at rest.
func (s *Sealer) Encrypts() bool { return s.aead != nil }

// Seal protects plain for the row identified by owner.
func (s *Sealer) Seal(plain, owner []byte) []byte {
	if s.aead == nil {
		return append([]byte{versionPlain}, plain...)
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = versionGCM
	if _, err := rand.Read(out[1:]); err != nil {
		panic("seal: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return s.aead.Seal(out, out[1:], plain, owner)
}

// Open returns the plaintext of a sealed value.
func (s *Sealer) Open(sealed, owner []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, errors.New("seal: empty value")
	}
	switch sealed[0] {
	case versionPlain:
		return sealed[1:], nil
	case versionGCM:
		if s.aead == nil {
			return nil, ErrNoKey
		}
		n := s.aead.NonceSize()
		if len(sealed) < 1+n+s.aead.Overhead() {
			return nil, errors.New("seal: value too short")
		}
		plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], owner)
		if err != nil {
			return nil, errors.New("seal: cannot decrypt (wrong data key, or the value was tampered with)")
		}
		return plain, nil
	}
	return nil, fmt.Errorf("seal: unknown format version %d", sealed[0])
}
