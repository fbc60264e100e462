package tbemu

import (
	"errors"
	"testing"
	"time"
)

func TestClaimCache(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	k := func(s string) claimData { return claimData{SecretKey: &s, ExpirationTime: 1} }

	t.Run("PutIfAbsent", func(t *testing.T) {
		c := newClaimCache(time.Hour, 10)
		if !c.putIfAbsent("d", k("a"), t0) || c.putIfAbsent("d", k("b"), t0) {
			t.Fatal("second put must be ignored")
		}
		if d, ok := c.get("d", t0); !ok || d.secret() != "a" {
			t.Fatalf("got %v %v, want the first secret", d.secret(), ok)
		}
	})
	t.Run("TTLIsExpireAfterWrite", func(t *testing.T) {
		c := newClaimCache(time.Hour, 10)
		c.putIfAbsent("d", k("a"), t0)
		if _, ok := c.get("d", t0.Add(time.Hour-time.Nanosecond)); !ok {
			t.Fatal("entry gone before its TTL")
		}
		if _, ok := c.get("d", t0.Add(time.Hour)); ok {
			t.Fatal("entry alive at its TTL")
		}
		if !c.putIfAbsent("d", k("b"), t0.Add(time.Hour)) {
			t.Fatal("put after expiry must store")
		}
	})
	t.Run("SizeLimitEvictsOldest", func(t *testing.T) {
		c := newClaimCache(time.Hour, 2)
		c.putIfAbsent("a", k("1"), t0)
		c.putIfAbsent("b", k("2"), t0.Add(time.Second))
		c.putIfAbsent("c", k("3"), t0.Add(2*time.Second))
		if _, ok := c.get("a", t0.Add(3*time.Second)); ok {
			t.Fatal("oldest entry not evicted")
		}
		if n := c.len(t0.Add(3 * time.Second)); n != 2 {
			t.Fatalf("len = %d, want 2", n)
		}
	})
	t.Run("Disabled", func(t *testing.T) {
		c := newClaimCache(time.Hour, -1)
		if c.putIfAbsent("d", k("a"), t0) {
			t.Fatal("disabled cache stored an entry")
		}
	})
	t.Run("Evict", func(t *testing.T) {
		c := newClaimCache(time.Hour, 10)
		c.putIfAbsent("d", k("a"), t0)
		c.evict("d")
		if _, ok := c.get("d", t0); ok {
			t.Fatal("entry survived evict")
		}
	})
}

func TestSecretKeyIsEmptyOrEqual(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	cases := []struct {
		req    string
		stored *string
		want   bool
	}{
		{"", nil, true}, {"", s(""), true}, {"k", s("k"), true},
		{"", s("k"), false}, {"k", nil, false}, {"K", s("k"), false}, {"k", s(""), false},
	}
	for _, c := range cases {
		if got := secretKeyIsEmptyOrEqual(c.req, c.stored); got != c.want {
			t.Errorf("secretKeyIsEmptyOrEqual(%q, %v) = %v", c.req, c.stored, got)
		}
	}
}

func TestDecodeClaimData(t *testing.T) {
	t.Parallel()
	d, err := decodeClaimData([]byte(`{"secretKey":"k","expirationTime":"1640995200000"}`))
	if err != nil || d.secret() != "k" || d.ExpirationTime != 1640995200000 {
		t.Fatalf("got %+v %v", d, err)
	}
	d, err = decodeClaimData([]byte(`{"secretKey":"k"}`))
	if err != nil || d.ExpirationTime != 0 {
		t.Fatalf("missing expirationTime: got %+v %v, want 0", d, err)
	}
	if d, err = decodeClaimData([]byte(`{"expirationTime":5}`)); err != nil || d.SecretKey != nil {
		t.Fatalf("missing secretKey: got %+v %v, want null", d, err)
	}
	for _, bad := range []string{`{"secretKey":"k","x":1}`, `[]`, `"s"`, `{"expirationTime":true}`, `nope`} {
		if _, err := decodeClaimData([]byte(bad)); err == nil {
			t.Errorf("decodeClaimData(%s) accepted", bad)
		}
	}
}

func TestJWT(t *testing.T) {
	t.Parallel()
	s := newJWTSigner()
	now := time.Unix(1_800_000_000, 0)
	tok := s.sign(jwtClaims{Sub: "u", Scopes: []string{authCustomerUser}, Iat: now.Unix(), Exp: now.Add(time.Hour).Unix()})
	if c, err := s.parse(tok, now); err != nil || c.Sub != "u" {
		t.Fatalf("parse: %+v %v", c, err)
	}
	if _, err := s.parse(tok, now.Add(time.Hour)); !errors.Is(err, errJWTExpired) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := newJWTSigner().parse(tok, now); !errors.Is(err, errJWTExpired) {
		t.Fatalf("foreign key: %v, want errJWTExpired (TB maps a bad signature to 'Token has expired')", err)
	}
	if _, err := s.parse("a.b", now); !errors.Is(err, errJWTMalformed) {
		t.Fatalf("malformed: %v", err)
	}
}
