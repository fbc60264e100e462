package tbemu

import (
	"log/slog"
	"time"
)

// Defaults from ThingsBoard's thingsboard.yml (docs/thingsboard.md §1.1 "Default duration", §3.1).
const (
	DefaultClaimDuration = 24 * time.Hour // security.claim.duration: 86400000
	DefaultCacheTTL      = 24 * time.Hour // cache.specs.claimDevices.timeToLiveInMinutes: 1440
	DefaultCacheSize     = 1000           // cache.specs.claimDevices.maxSize: 1000
	DefaultMQTTAddr      = "127.0.0.1:1883"
	DefaultHTTPAddr      = "127.0.0.1:9090" // the tb-postgres image serves HTTP on 9090
)

// Config configures an Emulator. The zero value of each field means its default, except
// AllowClaimingByDefault, whose ThingsBoard default (true) is set by DefaultConfig.
type Config struct {
	// MQTTAddr and HTTPAddr are the listen addresses; "127.0.0.1:0" picks free ports, which
	// (*Emulator).MQTTAddr and HTTPURL report. Empty means the defaults above.
	MQTTAddr, HTTPAddr string
	// Demo loads the demo data of the thingsboard/tb-postgres image (docs/thingsboard.md §5).
	Demo bool
	// ClaimDuration is security.claim.duration, used when a device sends no durationMs > 0.
	ClaimDuration time.Duration
	// CacheTTL is the claimDevices cache's expire-after-write time.
	CacheTTL time.Duration
	// CacheSize is the claimDevices cache's maximum number of entries; 0 means 1000 and a negative
	// value disables the cache as maxSize 0 does in ThingsBoard (device-side claims are dropped).
	CacheSize int
	// AllowClaimingByDefault is security.claim.allowClaimingByDefault (docs/thingsboard.md §4.3).
	AllowClaimingByDefault bool
	// RegistrationDelay delays every device-side registration after its acknowledgement, to let
	// tests exercise clients that race ThingsBoard's asynchronous processing (docs/thingsboard.md §7.2).
	RegistrationDelay time.Duration
	// JWTExpiration is the lifetime of access tokens (JWT_TOKEN_EXPIRATION_TIME, 9000 s).
	JWTExpiration time.Duration
	// Clock is the source of time; nil means real time.
	Clock Clock
	// Logger receives the emulator's logs; nil discards them. Tokens and secrets are never logged.
	Logger *slog.Logger
	// OnClaim, if set, is called (from the registration worker) for every device-side claim after
	// it has been processed. It must not block for long.
	OnClaim func(ClaimEvent)
}

// DefaultConfig returns ThingsBoard's defaults, listening on the default ports.
func DefaultConfig() Config {
	return Config{
		MQTTAddr:               DefaultMQTTAddr,
		HTTPAddr:               DefaultHTTPAddr,
		ClaimDuration:          DefaultClaimDuration,
		CacheTTL:               DefaultCacheTTL,
		CacheSize:              DefaultCacheSize,
		AllowClaimingByDefault: true,
		JWTExpiration:          9000 * time.Second,
	}
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.MQTTAddr == "" {
		c.MQTTAddr = DefaultMQTTAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.ClaimDuration <= 0 {
		c.ClaimDuration = DefaultClaimDuration
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.JWTExpiration <= 0 {
		c.JWTExpiration = 9000 * time.Second
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
