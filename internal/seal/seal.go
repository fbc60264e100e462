// Package seal protects device tokens and claim secrets at rest.
//
// A Sealer holds a keyring: the first key seals, every key opens. Each sealed
// value names the key that sealed it, so a replica can tell "sealed with a
// key I do not have" (another replica may have it: hand the claim back) from
// "sealed with my key, and it does not open" (tampered with or corrupted).
//
// Format of a stored value (docs/design.md §4):
//
//	0x02 | key id (4) | nonce (12) | AES-256-GCM ciphertext+tag
//
// The associated data is the version, the key id, the owner (the claim id)
// and the column ("token" or "secret"): a sealed value copied into another
// row, or swapped with the other column of its own row, does not open.
//
// Without a configured key (the demo, or the explicit opt-out) values are
// sealed the same way with a key that is written in this file: that hides
// nothing from someone who reads the database and this source, but keeps
// tokens out of anything that prints a row (a constraint violation's DETAIL
// in PostgreSQL's log, a casual SELECT). A Sealer with real keys refuses such
// values, like the older formats, until `claimsvc rekey` seals them again:
//
//	0x00 | plaintext            (before this format; no key)
//	0x01 | nonce | ciphertext   (before this format; bound to the claim id only)
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// Format versions (the first byte of a stored value).
const (
	versionPlain byte = 0 // legacy: plaintext
	versionGCMv1 byte = 1 // legacy: AES-256-GCM, associated data = owner only
	versionGCMv2 byte = 2 // AES-256-GCM with key id; associated data binds owner and column
)

const keyIDLen = 4

// The errors Open returns; each wraps ErrCannotOpen.
var (
	// ErrCannotOpen is the parent of every reason a value does not open.
	ErrCannotOpen = errors.New("seal: cannot open the value")
	// ErrUnknownKey: the value was sealed with a key this keyring lacks.
	// Another replica (with another keyring) may open it.
	ErrUnknownKey = fmt.Errorf("%w: it was sealed with a data key this process does not have", ErrCannotOpen)
	// ErrTampered: the value names a key this keyring has, and does not
	// authenticate with it, or it is malformed: it was changed in the
	// database (or moved to another row or column).
	ErrTampered = fmt.Errorf("%w: it does not authenticate (tampered with, moved to another row or column, or corrupted)", ErrCannotOpen)
	// ErrRekey: the value is in a form this keyring no longer accepts
	// (plain text, the v1 format, or sealed without a data key) because
	// real keys are configured; `claimsvc rekey` seals it again.
	ErrRekey = fmt.Errorf("%w: it is stored in plain text or an older format, refused once a data key is set (run: claimsvc rekey)", ErrCannotOpen)
	// ErrNoKey is ErrUnknownKey's older name.
	ErrNoKey = ErrUnknownKey
)

// unkeyedKey seals values when no data key is configured. It is public on
// purpose (see the package comment): it is not a secret and protects nothing
// against a reader of the database.
var unkeyedKey = sha256.Sum256([]byte("claimsvc: no data key is configured; this key is published in the source and protects nothing"))

type key struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// Sealer seals and opens values bound to an owner id and a column. Build one
// with New; it is safe for concurrent use.
type Sealer struct {
	keys    []key // keys[0] seals
	unkeyed bool  // no real key: keys[0] is unkeyedKey
	legacy  bool  // also open the v0 and v1 formats (claimsvc rekey)
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

// New returns a Sealer for a keyring: keys[0] seals, every key opens. With
// no keys (nil entries are skipped) it seals with the published unkeyed key
// and Encrypts reports false.
func New(keys [][]byte) (*Sealer, error) {
	s := &Sealer{}
	seen := map[[keyIDLen]byte]bool{}
	for i, k := range keys {
		if k == nil {
			continue
		}
		if len(k) != 32 {
			return nil, fmt.Errorf("data key %d: want 32 bytes, got %d", i+1, len(k))
		}
		kk, err := newKey(k)
		if err != nil {
			return nil, fmt.Errorf("data key %d: %w", i+1, err)
		}
		if kk.id == unkeyedID() {
			return nil, fmt.Errorf("data key %d is the published unkeyed key: generate one with openssl rand -base64 32", i+1)
		}
		if seen[kk.id] {
			return nil, fmt.Errorf("data key %d appears twice in the keyring", i+1)
		}
		seen[kk.id] = true
		s.keys = append(s.keys, kk)
	}
	if len(s.keys) == 0 {
		kk, err := newKey(unkeyedKey[:])
		if err != nil {
			return nil, err
		}
		s.keys, s.unkeyed = []key{kk}, true
	}
	return s, nil
}

func newKey(k []byte) (key, error) {
	block, err := aes.NewCipher(k)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	return key{id: keyID(k), aead: aead}, nil
}

// keyID names a key in sealed values: 4 bytes of a hash of the key.
func keyID(k []byte) [keyIDLen]byte {
	h := sha256.Sum256(append([]byte("claimsvc data key id\x00"), k...))
	var id [keyIDLen]byte
	copy(id[:], h[:])
	return id
}

func unkeyedID() [keyIDLen]byte { return keyID(unkeyedKey[:]) }

// WithLegacy returns a copy that also opens the older formats (plain text,
// v1) and values sealed without a key: for `claimsvc rekey`, which seals
// them again with the current key.
func (s *Sealer) WithLegacy() *Sealer {
	c := *s
	c.legacy = true
	return &c
}

// Encrypts reports whether a real data key seals values.
func (s *Sealer) Encrypts() bool { return !s.unkeyed }

// Keys returns how many keys the keyring holds (0 without a real key).
func (s *Sealer) Keys() int {
	if s.unkeyed {
		return 0
	}
	return len(s.keys)
}

// CurrentPrefix is the first bytes of every value sealed by this Sealer now:
// a value that does not start with it needs `claimsvc rekey`.
func (s *Sealer) CurrentPrefix() []byte {
	return append([]byte{versionGCMv2}, s.keys[0].id[:]...)
}

// Current reports whether sealed was sealed with this Sealer's sealing key in
// the current format.
func (s *Sealer) Current(sealed []byte) bool { return bytes.HasPrefix(sealed, s.CurrentPrefix()) }

// associated binds a value to its format, key, owner and column.
func associated(id [keyIDLen]byte, owner []byte, column string) []byte {
	ad := make([]byte, 0, 16+keyIDLen+len(owner)+len(column))
	ad = append(ad, "claimsvc/v2\x00"...)
	ad = append(ad, id[:]...)
	ad = append(ad, owner...)
	ad = append(ad, 0)
	return append(ad, column...)
}

// Seal protects plain for the column of the row identified by owner.
func (s *Sealer) Seal(plain, owner []byte, column string) []byte {
	k := s.keys[0]
	n := k.aead.NonceSize()
	out := make([]byte, 1+keyIDLen+n, 1+keyIDLen+n+len(plain)+k.aead.Overhead())
	out[0] = versionGCMv2
	copy(out[1:], k.id[:])
	if _, err := rand.Read(out[1+keyIDLen:]); err != nil {
		panic("seal: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return k.aead.Seal(out, out[1+keyIDLen:], plain, associated(k.id, owner, column))
}

// Open returns the plaintext of a value sealed for owner's column. Its errors
// wrap ErrUnknownKey, ErrTampered or ErrRekey and never hold the value.
func (s *Sealer) Open(sealed, owner []byte, column string) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, fmt.Errorf("%w: empty value", ErrTampered)
	}
	switch sealed[0] {
	case versionGCMv2:
		return s.openV2(sealed, owner, column)
	case versionPlain:
		if s.unkeyed || s.legacy {
			return sealed[1:], nil
		}
		return nil, ErrRekey
	case versionGCMv1:
		if !s.legacy {
			if s.unkeyed {
				return nil, ErrUnknownKey
			}
			return nil, ErrRekey
		}
		for _, k := range s.keys {
			if p, err := openGCM(k.aead, sealed[1:], owner); err == nil {
				return p, nil
			}
		}
		return nil, fmt.Errorf("%w (v1 format: no key of the keyring opens it)", ErrUnknownKey)
	}
	return nil, fmt.Errorf("%w: unknown format version %d", ErrTampered, sealed[0])
}

func (s *Sealer) openV2(sealed, owner []byte, column string) ([]byte, error) {
	if len(sealed) < 1+keyIDLen {
		return nil, fmt.Errorf("%w: value too short", ErrTampered)
	}
	var id [keyIDLen]byte
	copy(id[:], sealed[1:])
	var aead cipher.AEAD
	for _, k := range s.keys {
		if k.id == id {
			aead = k.aead
			break
		}
	}
	if aead == nil {
		if id == unkeyedID() && !s.unkeyed {
			if !s.legacy {
				return nil, ErrRekey
			}
			k, err := newKey(unkeyedKey[:])
			if err != nil {
				return nil, err
			}
			aead = k.aead
		} else {
			return nil, ErrUnknownKey
		}
	}
	p, err := openGCM(aead, sealed[1+keyIDLen:], associated(id, owner, column))
	if err != nil {
		return nil, ErrTampered
	}
	return p, nil
}

func openGCM(aead cipher.AEAD, body, ad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(body) < n+aead.Overhead() {
		return nil, errors.New("value too short")
	}
	return aead.Open(nil, body[:n], body[n:], ad)
}
