package tbemu

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// bandwidth is one "capacity:seconds" entry of a ThingsBoard rate-limit string.
type bandwidth struct {
	capacity float64
	period   time.Duration
}

// parseRateLimit reads ThingsBoard's rate-limit syntax (RateLimitUtil.parseConfig): comma-separated
// "capacity:seconds" pairs, each a bucket4j bandwidth; all must hold a token for a message to pass.
func parseRateLimit(s string) ([]bandwidth, error) {
	var out []bandwidth
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		c, p, ok := strings.Cut(part, ":")
		capacity, err1 := strconv.ParseInt(strings.TrimSpace(c), 10, 64)
		secs, err2 := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if !ok || err1 != nil || err2 != nil || capacity <= 0 || secs <= 0 {
			return nil, fmt.Errorf("%q is not capacity:seconds (e.g. 20:1,600:60)", part)
		}
		out = append(out, bandwidth{capacity: float64(capacity), period: time.Duration(secs) * time.Second})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("failed to parse rate limits configuration: %q", s)
	}
	return out, nil
}

// tokenBucket is TbRateLimits: a bucket4j bucket with one bandwidth per entry, each starting full and
// refilled greedily (continuously) at capacity per period. It reads the emulator's clock, so tests
// can move time. The caller synchronises access.
type tokenBucket struct {
	limits []bandwidth
	tokens []float64
	last   time.Time
}

func newTokenBucket(limits []bandwidth, now time.Time) *tokenBucket {
	b := &tokenBucket{limits: limits, tokens: make([]float64, len(limits)), last: now}
	for i, l := range limits {
		b.tokens[i] = l.capacity
	}
	return b
}

// tryConsume takes one token from every bandwidth, or none if one of them is empty.
func (b *tokenBucket) tryConsume(now time.Time) bool {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		for i, l := range b.limits {
			b.tokens[i] = min(l.capacity, b.tokens[i]+l.capacity*float64(elapsed)/float64(l.period))
		}
		b.last = now
	}
	for _, t := range b.tokens {
		if t < 1 {
			return false
		}
	}
	for i := range b.tokens {
		b.tokens[i]--
	}
	return true
}

// deviceLimiter is DefaultTransportRateLimitService's per-device limit (the tenant profile's
// transportDeviceMsgRateLimit). Like ThingsBoard it applies to devices that are not gateways; a
// message over the limit fails the transport's callback (docs/tbemu.md "Transport refusals").
type deviceLimiter struct {
	mu      sync.Mutex
	limits  []bandwidth // nil: no limit
	clock   Clock
	buckets map[string]*tokenBucket // device id → bucket
}

func newDeviceLimiter(spec string, clock Clock) *deviceLimiter {
	l := &deviceLimiter{clock: clock, buckets: map[string]*tokenBucket{}}
	if spec != "" {
		l.limits, _ = parseRateLimit(spec) // checked by Config.withDefaults
	}
	return l
}

// allow consumes one message of the device's budget.
func (l *deviceLimiter) allow(deviceID string) bool {
	if l.limits == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	b := l.buckets[deviceID]
	if b == nil {
		if len(l.buckets) >= maxTrackedEntries {
			clear(l.buckets) // bounded memory; ThingsBoard forgets limits of deleted devices the same way
		}
		b = newTokenBucket(l.limits, now)
		l.buckets[deviceID] = b
	}
	return b.tryConsume(now)
}

// maxTrackedEntries bounds the per-device and per-address tables.
const maxTrackedEntries = 100000

// ipStats is InetAddressRateLimitStats.
type ipStats struct {
	failures int
	blocked  bool
	last     time.Time
}

// ipLimiter is the IP part of DefaultTransportRateLimitService (transport.rate_limits.*), used by
// the MQTT transport's IpFilter: after maxWrong connects with bad credentials an address is blocked
// for blockFor, counted from its last failure; a connect with good credentials resets the count.
type ipLimiter struct {
	mu         sync.Mutex
	enabled    bool
	maxWrong   int
	blockFor   time.Duration
	inactivity time.Duration
	clock      Clock
	stats      map[string]*ipStats
	lastSweep  time.Time
}

func newIPLimiter(c Config) *ipLimiter {
	return &ipLimiter{enabled: c.IPLimitsEnabled, maxWrong: c.MaxWrongCredentialsPerIP, blockFor: c.IPBlockTimeout,
		inactivity: c.SessionInactivityTimeout, clock: c.Clock, stats: map[string]*ipStats{}}
}

// sweep is invalidateRateLimitsIpTable, which ThingsBoard runs every few seconds: it forgets
// addresses idle for max(inactivity, block) and unblocks those whose block ran out (their failure
// count stays, so one more failure blocks them again). The caller holds mu.
func (l *ipLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < 3*time.Second && len(l.stats) < maxTrackedEntries {
		return
	}
	l.lastSweep = now
	idle := max(l.inactivity, l.blockFor)
	for ip, s := range l.stats {
		switch {
		case now.Sub(s.last) > idle:
			delete(l.stats, ip)
		case s.blocked && now.Sub(s.last) > l.blockFor:
			s.blocked = false
		}
	}
	if len(l.stats) >= maxTrackedEntries {
		clear(l.stats)
	}
}

// allow is checkAddress: false while the address is blocked.
func (l *ipLimiter) allow(ip string) bool {
	if !l.enabled {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.sweep(now)
	s := l.stats[ip]
	return s == nil || !s.blocked || now.Sub(s.last) > l.blockFor
}

// onSuccess is onAuthSuccess.
func (l *ipLimiter) onSuccess(ip string) {
	if !l.enabled {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.sweep(now)
	s := l.entry(ip)
	s.last, s.failures, s.blocked = now, 0, false
}

// onFailure is onAuthFailure; it reports whether the address is now blocked.
func (l *ipLimiter) onFailure(ip string) bool {
	if !l.enabled {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.sweep(now)
	s := l.entry(ip)
	s.last = now
	s.failures++
	if s.failures >= l.maxWrong {
		s.blocked = true
	}
	return s.blocked
}

func (l *ipLimiter) entry(ip string) *ipStats {
	s := l.stats[ip]
	if s == nil {
		s = &ipStats{}
		l.stats[ip] = s
	}
	return s
}
