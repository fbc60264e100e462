package tbemu

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults from ThingsBoard's thingsboard.yml (docs/thingsboard.md §1.1 "Default duration", §3.1, §9).
const (
	DefaultClaimDuration = 24 * time.Hour // security.claim.duration: 86400000
	DefaultCacheTTL      = 24 * time.Hour // cache.specs.claimDevices.timeToLiveInMinutes: 1440
	DefaultCacheSize     = 1000           // cache.specs.claimDevices.maxSize: 1000
	DefaultMQTTAddr      = "127.0.0.1:1883"
	DefaultHTTPAddr      = "127.0.0.1:9090" // the tb-postgres image serves HTTP on 9090

	// DefaultMaxSessionsPerDevice is actors.session.max_concurrent_sessions_per_device.
	DefaultMaxSessionsPerDevice = 1
	// DefaultMaxWrongCredentialsPerIP is transport.rate_limits.max_wrong_credentials_per_ip.
	DefaultMaxWrongCredentialsPerIP = 10
	// DefaultIPBlockTimeout is transport.rate_limits.ip_block_timeout (60000 ms).
	DefaultIPBlockTimeout = time.Minute
	// DefaultSessionInactivityTimeout is transport.sessions.inactivity_timeout (600000 ms).
	DefaultSessionInactivityTimeout = 10 * time.Minute
	// DefaultJWTExpiration is security.jwt.tokenExpirationTime (JWT_TOKEN_EXPIRATION_TIME, 9000 s).
	DefaultJWTExpiration = 9000 * time.Second
)

// CachePolicy decides what the claim cache does when a new entry would exceed its size
// (docs/thingsboard.md §9 "Cache"; docs/tbemu.md "Cache admission").
type CachePolicy string

const (
	// CacheTinyLFU models Caffeine's W-TinyLFU as ThingsBoard configures it
	// (TbCaffeineCacheConfiguration): a 1% admission window, a segmented main space, and a
	// frequency filter that keeps the main space's victim on a tie, so a full cache may refuse
	// the entry just written. It is ThingsBoard's behaviour and the default.
	CacheTinyLFU CachePolicy = "tinylfu"
	// CacheEvictOldest drops the entry written longest ago (the emulator's behaviour before the
	// W-TinyLFU model); useful to test a client against plain FIFO eviction.
	CacheEvictOldest CachePolicy = "oldest"
	// CacheRefuseNew never evicts: a full cache drops every new entry (the worst case of W-TinyLFU).
	CacheRefuseNew CachePolicy = "refuse-new"
)

func (p CachePolicy) valid() bool {
	switch p {
	case CacheTinyLFU, CacheEvictOldest, CacheRefuseNew:
		return true
	}
	return false
}

// Config configures an Emulator. The zero value of each field means ThingsBoard's default, except
// AllowClaimingByDefault, whose ThingsBoard default (true) is set by DefaultConfig.
type Config struct {
	// MQTTAddr and HTTPAddr are the listen addresses; "127.0.0.1:0" picks free ports, which
	// (*Emulator).MQTTAddr and HTTPURL report. Empty means the defaults above.
	MQTTAddr, HTTPAddr string
	// Demo loads the demo data of the thingsboard/tb-postgres image (docs/thingsboard.md §5) and
	// creates an API key for tenant@thingsboard.org (DemoAPIKey).
	Demo bool
	// DataDir, if set, keeps tenants, customers, users, device profiles, devices, credentials,
	// server attributes, API keys and the JWT signing key in DataDir/tbemu-state.json across
	// restarts, as ThingsBoard's database does. The claim cache, sessions and rate-limit state are
	// memory only and start empty, as in ThingsBoard.
	DataDir string
	// ClaimDuration is security.claim.duration, used when a device sends no durationMs > 0.
	ClaimDuration time.Duration
	// CacheTTL is the claimDevices cache's expire-after-write time.
	CacheTTL time.Duration
	// CacheSize is the claimDevices cache's maximum number of entries; 0 means 1000 and a negative
	// value disables the cache as maxSize 0 does in ThingsBoard (device-side claims are dropped).
	CacheSize int
	// CachePolicy is what a full claim cache does with a new entry; "" means CacheTinyLFU.
	CachePolicy CachePolicy
	// AllowClaimingByDefault is security.claim.allowClaimingByDefault (docs/thingsboard.md §4.3).
	AllowClaimingByDefault bool
	// RegistrationDelay delays every device-side registration after its acknowledgement, to let
	// tests exercise clients that race ThingsBoard's asynchronous processing (docs/thingsboard.md §7.2).
	RegistrationDelay time.Duration
	// JWTExpiration is the lifetime of access tokens (JWT_TOKEN_EXPIRATION_TIME, 9000 s).
	JWTExpiration time.Duration
	// MaxSessionsPerDevice is actors.session.max_concurrent_sessions_per_device: when a device
	// opens one session more, its oldest session is closed. 0 means ThingsBoard's default, 1; a
	// negative value means no limit (not a ThingsBoard setting).
	MaxSessionsPerDevice int
	// IPLimitsEnabled is transport.rate_limits.ip_limits_enabled (default false): an address that
	// made MaxWrongCredentialsPerIP MQTT connects with bad credentials is blocked for IPBlockTimeout.
	IPLimitsEnabled bool
	// MaxWrongCredentialsPerIP is transport.rate_limits.max_wrong_credentials_per_ip; 0 means 10.
	MaxWrongCredentialsPerIP int
	// IPBlockTimeout is transport.rate_limits.ip_block_timeout; 0 means 60 s.
	IPBlockTimeout time.Duration
	// DeviceRateLimit is the tenant profile's transportDeviceMsgRateLimit, e.g. "20:1,600:60"
	// (capacity:seconds, comma separated). "" (ThingsBoard's default tenant profile) means no limit.
	DeviceRateLimit string
	// SessionInactivityTimeout is transport.sessions.inactivity_timeout: an MQTT connection that
	// sends nothing for this long is closed. 0 means 10 minutes.
	SessionInactivityTimeout time.Duration
	// Clock is the source of time; nil means real time.
	Clock Clock
	// Logger receives the emulator's logs; nil discards them. Tokens, secrets and API keys are never
	// logged.
	Logger *slog.Logger
	// OnClaim, if set, is called (from the registration worker) for every device-side claim after
	// it has been processed. It must not block for long.
	OnClaim func(ClaimEvent)
}

// DefaultConfig returns ThingsBoard's defaults, listening on the default ports.
func DefaultConfig() Config {
	return Config{
		MQTTAddr:                 DefaultMQTTAddr,
		HTTPAddr:                 DefaultHTTPAddr,
		ClaimDuration:            DefaultClaimDuration,
		CacheTTL:                 DefaultCacheTTL,
		CacheSize:                DefaultCacheSize,
		CachePolicy:              CacheTinyLFU,
		AllowClaimingByDefault:   true,
		JWTExpiration:            DefaultJWTExpiration,
		MaxSessionsPerDevice:     DefaultMaxSessionsPerDevice,
		MaxWrongCredentialsPerIP: DefaultMaxWrongCredentialsPerIP,
		IPBlockTimeout:           DefaultIPBlockTimeout,
		SessionInactivityTimeout: DefaultSessionInactivityTimeout,
	}
}

// withDefaults fills the zero fields and checks the others.
func (c Config) withDefaults() (Config, error) {
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
	if c.CachePolicy == "" {
		c.CachePolicy = CacheTinyLFU
	}
	if !c.CachePolicy.valid() {
		return c, fmt.Errorf("tbemu: unknown cache policy %q (want %s, %s or %s)", c.CachePolicy, CacheTinyLFU, CacheEvictOldest, CacheRefuseNew)
	}
	if c.JWTExpiration <= 0 {
		c.JWTExpiration = DefaultJWTExpiration
	}
	if c.MaxSessionsPerDevice == 0 {
		c.MaxSessionsPerDevice = DefaultMaxSessionsPerDevice
	}
	if c.MaxWrongCredentialsPerIP <= 0 {
		c.MaxWrongCredentialsPerIP = DefaultMaxWrongCredentialsPerIP
	}
	if c.IPBlockTimeout <= 0 {
		c.IPBlockTimeout = DefaultIPBlockTimeout
	}
	if c.SessionInactivityTimeout <= 0 {
		c.SessionInactivityTimeout = DefaultSessionInactivityTimeout
	}
	if c.DeviceRateLimit != "" {
		if _, err := parseRateLimit(c.DeviceRateLimit); err != nil {
			return c, fmt.Errorf("tbemu: device rate limit: %w", err)
		}
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
