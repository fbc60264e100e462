package tbemu

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestClaimCache(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	k := func(s string) claimData { return claimData{SecretKey: &s, ExpirationTime: 1} }

	for _, policy := range []CachePolicy{CacheTinyLFU, CacheEvictOldest, CacheRefuseNew} {
		t.Run(string(policy), func(t *testing.T) {
			t.Run("PutIfAbsent", func(t *testing.T) {
				c := newClaimCache(time.Hour, 10, policy)
				if ok, _ := c.putIfAbsent("d", k("a"), t0); !ok {
					t.Fatal("first put not stored")
				}
				if ok, reason := c.putIfAbsent("d", k("b"), t0); ok || !strings.Contains(reason, "putIfAbsent") {
					t.Fatalf("second put: stored=%v reason %q, want ignored", ok, reason)
				}
				if d, ok := c.get("d", t0); !ok || d.secret() != "a" {
					t.Fatalf("got %v %v, want the first secret", d.secret(), ok)
				}
			})
			t.Run("TTLIsExpireAfterWrite", func(t *testing.T) {
				c := newClaimCache(time.Hour, 10, policy)
				c.putIfAbsent("d", k("a"), t0)
				if _, ok := c.get("d", t0.Add(time.Hour-time.Nanosecond)); !ok {
					t.Fatal("entry gone before its TTL")
				}
				if _, ok := c.get("d", t0.Add(time.Hour)); ok {
					t.Fatal("entry alive at its TTL")
				}
				if ok, _ := c.putIfAbsent("d", k("b"), t0.Add(time.Hour)); !ok {
					t.Fatal("put after expiry must store")
				}
			})
			t.Run("Bounded", func(t *testing.T) {
				c := newClaimCache(time.Hour, 50, policy)
				for i := range 200 {
					c.putIfAbsent(fmt.Sprint(i), k("x"), t0)
				}
				if n := c.len(t0); n != 50 {
					t.Fatalf("len = %d, want 50", n)
				}
			})
			t.Run("Disabled", func(t *testing.T) {
				c := newClaimCache(time.Hour, -1, policy)
				if ok, reason := c.putIfAbsent("d", k("a"), t0); ok || reason != "claim cache disabled" {
					t.Fatalf("disabled cache: stored=%v %q", ok, reason)
				}
			})
			t.Run("Evict", func(t *testing.T) {
				c := newClaimCache(time.Hour, 10, policy)
				c.putIfAbsent("d", k("a"), t0)
				c.evict("d")
				if _, ok := c.get("d", t0); ok {
					t.Fatal("entry survived evict")
				}
			})
		})
	}

	t.Run("OldestIsFIFO", func(t *testing.T) {
		c := newClaimCache(time.Hour, 2, CacheEvictOldest)
		c.putIfAbsent("a", k("1"), t0)
		c.putIfAbsent("b", k("2"), t0.Add(time.Second))
		c.get("a", t0) // a read does not save the oldest write
		c.putIfAbsent("c", k("3"), t0.Add(2*time.Second))
		if _, ok := c.peek("a", t0.Add(3*time.Second)); ok {
			t.Fatal("oldest entry not evicted")
		}
	})
	t.Run("RefuseNewKeepsTheOld", func(t *testing.T) {
		c := newClaimCache(time.Hour, 2, CacheRefuseNew)
		c.putIfAbsent("a", k("1"), t0)
		c.putIfAbsent("b", k("2"), t0)
		if ok, reason := c.putIfAbsent("c", k("3"), t0); ok || !strings.Contains(reason, "full") {
			t.Fatalf("third put: stored=%v %q, want refused", ok, reason)
		}
		if _, ok := c.peek("a", t0); !ok {
			t.Fatal("old entry evicted")
		}
	})
}

// TestTinyLFUModel follows Caffeine's W-TinyLFU through the writes the claimsvc batch test makes:
// 1,500 registrations into a fresh 1,000-entry cache, then 100 more.
func TestTinyLFUModel(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	c := newClaimCache(24*time.Hour, 1000, CacheTinyLFU)
	put := func(from, to int) {
		for i := from; i < to; i++ {
			s := "s"
			if ok, _ := c.putIfAbsent(fmt.Sprintf("d%04d", i), claimData{SecretKey: &s}, t0); !ok {
				t.Fatalf("d%04d refused at write time; the admission decision comes when it leaves the window", i)
			}
		}
	}
	have := func(i int) bool { _, ok := c.peek(fmt.Sprintf("d%04d", i), t0); return ok }

	// The sketch starts counting when the cache is half full and is re-created (counts lost) when
	// it outgrows its first table of 512: d0000-d0511 have frequency 0 and lose to every newcomer.
	put(0, 1500)
	if n := c.len(t0); n != 1000 {
		t.Fatalf("len = %d, want 1000", n)
	}
	for i := range 1500 {
		if want := i >= 500; have(i) != want {
			t.Fatalf("after 1,500 writes: d%04d present=%v, want %v (the oldest 500 evicted)", i, have(i), want)
		}
	}

	// Now every victim has been counted once: a newcomer ties and is refused as it leaves the window,
	// while the cache keeps its old entries. Only the first 12 (which met the remaining uncounted
	// victims d0500-d0511) and the 10 still in the window are kept.
	put(1500, 1600)
	kept := 0
	for i := 1500; i < 1600; i++ {
		if have(i) {
			kept++
		}
	}
	if kept != 12 || !have(1500) || !have(1501) || have(1502) || have(1589) || !have(1590) || !have(1599) {
		t.Fatalf("second batch: %d of 100 kept, want d1500-d1501 and the window d1590-d1599", kept)
	}
	if !have(512) || have(511) {
		t.Fatal("the old entries counted once must be kept, the uncounted ones evicted")
	}

	// A device that registers again after being refused is counted twice and wins against a victim
	// counted once.
	s := "s"
	c.putIfAbsent("d1550", claimData{SecretKey: &s}, t0)
	put(1600, 1611) // push d1550 out of the window
	if !have(1550) {
		t.Fatal("a twice-counted entry was refused")
	}
}

func TestFrequencySketchAges(t *testing.T) {
	t.Parallel()
	var s frequencySketch
	s.increment("a")
	if s.frequency("a") != 0 {
		t.Fatal("an uninitialised sketch counts")
	}
	s.ensureCapacity(1) // sample size 10
	for range 9 {
		s.increment("a")
	}
	if f := s.frequency("a"); f != 9 {
		t.Fatalf("frequency %d, want 9", f)
	}
	s.increment("b") // the 10th addition halves every counter
	if fa, fb := s.frequency("a"), s.frequency("b"); fa != 4 || fb != 0 {
		t.Fatalf("after reset a=%d b=%d, want 4 and 0", fa, fb)
	}
	for range 20 {
		s.increment("c")
	}
	if f := s.frequency("c"); f > 15 {
		t.Fatalf("counter %d exceeds 4 bits", f)
	}
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
