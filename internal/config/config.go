// Package config reads claimsvc's settings. Every setting is a command-line
// flag and an environment variable (CLAIMSVC_*); a flag wins over the
// environment, which wins over the default. The table below is the single
// source for parsing, defaults and --help.
package config

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Config is everything `claimsvc serve` needs.
type Config struct {
	HTTPAddr           string
	DatabaseURL        string
	DBMaxConns         int
	IntakeCommitters   int // intake transactions in flight at once (group commit)
	IntakeBatch        int // claims per intake transaction at most
	Migrate            bool
	MQTTURL            string
	MQTTCAFile         string
	MQTTConnectTimeout time.Duration
	MQTTAckTimeout     time.Duration
	DataKey            string // base64; see internal/seal
	APIKeyHashes       [][]byte
	RequireAPIKey      bool
	// Security settings (docs/security.md §2 to §7): see secure.go.
	InsecureNoAPIKeys       bool     // serve without API keys (explicit opt-out)
	DataKeyring             string   // CLAIMSVC_DATA_KEYS as given
	DataKeys                [][]byte // the keyring: CLAIMSVC_DATA_KEYS, or CLAIMSVC_DATA_KEY alone; the first seals
	InsecureNoDataKey       bool     // serve without a data key (explicit opt-out)
	RejectedTokenLimit      Rate     // per client IP: unknown device tokens shown to callers without a key
	MaxWaiters              int      // Prefer: wait requests held at once
	MaxBatches              int      // POST /claims:batch requests handled at once
	FailedSecretRetention   time.Duration
	ClaimRetention          time.Duration // 0: keep final claims forever
	IdempotencyKeyRetention time.Duration // 0: keep keys forever
	RetentionInterval       time.Duration
	RateLimitIP             Rate     // per client IP; zero: off
	RateLimitToken          Rate     // per device token (by its SHA-256); zero: off
	TrustedProxies          []string // CIDRs whose X-Forwarded-For names the client
	BrokerProbe             time.Duration
	BrokerProbeToken        string        // a device token kept for the probe; "": the probe never logs in
	LeaseFor                time.Duration // 0: derived from the MQTT timeouts
	StatsInterval           time.Duration
	Workers                 int
	DefaultDurationMs       int64
	TBClaimHold             time.Duration
	TBClaimCacheTTL         time.Duration // ThingsBoard's claim cache TTL: device-side claims may not ask for more
	Delivery                string        // the delivery of a request that names none
	TB                      ThingsBoard   // ThingsBoard's REST API (attribute and http deliveries, the tracker)
	MaxPendingAge           time.Duration
	ShutdownTimeout         time.Duration
	LogLevel                slog.Level
	LogFormat               string
	Demo                    bool
	DemoMQTTAddr            string
	DemoHTTPAddr            string
	PprofAddr               string // "": no profiling endpoint

	Console bool // the operator console at /ui/ (internal/console)

	given map[string]bool // flags whose value came from the command line or the environment
}

// Given reports whether the setting with this flag name was set on the
// command line or in the environment, rather than left at its default.
func (c Config) Given(flag string) bool { return c.given[flag] }

// ThingsBoard is how claimsvc reaches ThingsBoard's REST API and HTTP device
// API. URL alone enables the http delivery; URL and credentials (an API key,
// or a tenant administrator's user name and password) enable the attribute
// delivery and the tracker.
type ThingsBoard struct {
	URL          string
	APIKey       string
	Username     string
	Password     string
	CAFile       string
	PollInterval time.Duration
}

// REST reports whether the REST API can be used: a URL and credentials.
func (t ThingsBoard) REST() bool { return t.URL != "" && (t.APIKey != "" || t.Username != "") }

// MissingREST names the settings the REST API still needs ("" when none).
func (t ThingsBoard) MissingREST() string {
	switch {
	case t.URL == "" && t.APIKey == "" && t.Username == "":
		return "CLAIMSVC_TB_URL and CLAIMSVC_TB_API_KEY (or CLAIMSVC_TB_USERNAME and CLAIMSVC_TB_PASSWORD)"
	case t.URL == "":
		return "CLAIMSVC_TB_URL"
	case t.APIKey == "" && t.Username == "":
		return "CLAIMSVC_TB_API_KEY (or CLAIMSVC_TB_USERNAME and CLAIMSVC_TB_PASSWORD)"
	}
	return ""
}

// MissingDeviceAPI names the setting the HTTP device API still needs.
func (t ThingsBoard) MissingDeviceAPI() string {
	if t.URL == "" {
		return "CLAIMSVC_TB_URL"
	}
	return ""
}

// setting is one row of the table: a flag, its variable, its default.
type setting struct {
	flag, env, def, usage string
	// secret: never echoed (errors, help), and never taken from a flag
	// (argv is readable by every user of the machine, and served by
	// /proc/PID/cmdline): only from the variable, or from a file named by
	// the variable with _FILE appended (Kubernetes and Docker secrets).
	secret  bool
	boolean bool
	apply   func(c *Config, v string) error
}

// Settings lists every setting of `serve`, in --help order.
var settings = []setting{
	{flag: "http-addr", env: "CLAIMSVC_HTTP_ADDR", def: ":8080", usage: "address the HTTP API listens on",
		apply: func(c *Config, v string) error { c.HTTPAddr = v; return nil }},
	{flag: "database-url", env: "CLAIMSVC_DATABASE_URL", def: "postgres://postgres@localhost:5432/postgres?sslmode=disable",
		usage: "PostgreSQL connection URL", secret: true,
		apply: func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
	{flag: "db-max-conns", env: "CLAIMSVC_DB_MAX_CONNS", def: "20",
		usage: "PostgreSQL connections of the main pool (intake, reads, the tracker); the dispatcher's pool adds max(4, half this), the claim listener one more: at most N + max(4, N/2) + 1 per replica; at least intake committers + 6",
		apply: func(c *Config, v string) error { return positiveInt(&c.DBMaxConns, v) }},
	{flag: "intake-committers", env: "CLAIMSVC_INTAKE_COMMITTERS", def: "4",
		usage: "intake transactions in flight at once; concurrent claim requests share them (group commit)",
		apply: func(c *Config, v string) error { return positiveInt(&c.IntakeCommitters, v) }},
	{flag: "intake-batch", env: "CLAIMSVC_INTAKE_BATCH", def: "64", usage: "claim requests one intake transaction takes at most",
		apply: func(c *Config, v string) error { return positiveInt(&c.IntakeBatch, v) }},
	{flag: "migrate", env: "CLAIMSVC_MIGRATE", def: "true", boolean: true, usage: "apply pending database migrations at start",
		apply: func(c *Config, v string) error { return parseBool(&c.Migrate, v) }},
	{flag: "mqtt-url", env: "CLAIMSVC_MQTT_URL", def: "tcp://localhost:1883", usage: "ThingsBoard's MQTT endpoint: tcp://, mqtt://, ssl:// or mqtts://",
		apply: func(c *Config, v string) error { c.MQTTURL = v; return nil }},
	{flag: "mqtt-ca-file", env: "CLAIMSVC_MQTT_CA_FILE", usage: "PEM file of CAs to trust for ssl:// and mqtts:// (default: the system's)",
		apply: func(c *Config, v string) error { c.MQTTCAFile = v; return nil }},
	{flag: "mqtt-connect-timeout", env: "CLAIMSVC_MQTT_CONNECT_TIMEOUT", def: "10s", usage: "how long to wait for CONNACK",
		apply: func(c *Config, v string) error { return positiveDuration(&c.MQTTConnectTimeout, v) }},
	{flag: "mqtt-ack-timeout", env: "CLAIMSVC_MQTT_ACK_TIMEOUT", def: "10s", usage: "how long to wait for PUBACK",
		apply: func(c *Config, v string) error { return positiveDuration(&c.MQTTAckTimeout, v) }},
	{flag: "data-key", env: "CLAIMSVC_DATA_KEY", secret: true,
		usage: "32-byte key, base64, to encrypt tokens and secrets at rest with AES-256-GCM (openssl rand -base64 32); serve needs it (or CLAIMSVC_DATA_KEYS) unless --demo or CLAIMSVC_INSECURE_NO_DATA_KEY",
		apply: func(c *Config, v string) error { c.DataKey = v; return nil }},
	{flag: "data-keys", env: "CLAIMSVC_DATA_KEYS", secret: true,
		usage: "keyring instead of CLAIMSVC_DATA_KEY: comma-separated base64 32-byte keys, the first encrypts, all decrypt (rotate: new key first, claimsvc rekey, then drop the old one)",
		apply: func(c *Config, v string) error { c.DataKeyring = v; return nil }},
	{flag: "insecure-no-data-key", env: "CLAIMSVC_INSECURE_NO_DATA_KEY", def: "false", boolean: true,
		usage: "serve without a data key: tokens and secrets are sealed with a key published in the source, i.e. not encrypted (logged at every start)",
		apply: func(c *Config, v string) error { return parseBool(&c.InsecureNoDataKey, v) }},
	{flag: "api-keys", env: "CLAIMSVC_API_KEYS",
		usage: "comma-separated SHA-256 hex digests of accepted API keys (printf %s KEY | sha256sum | cut -d' ' -f1); serve needs them unless --demo or CLAIMSVC_INSECURE_NO_API_KEYS; operator routes, reads by id and the batch need a key",
		apply: parseKeyHashes},
	{flag: "require-api-key", env: "CLAIMSVC_REQUIRE_API_KEY", def: "false", boolean: true, usage: "also require an API key on the device routes (create a claim, a device's claims)",
		apply: func(c *Config, v string) error { return parseBool(&c.RequireAPIKey, v) }},
	{flag: "insecure-no-api-keys", env: "CLAIMSVC_INSECURE_NO_API_KEYS", def: "false", boolean: true,
		usage: "serve without API keys: anyone who reaches the port may list, cancel and retry claims (logged at every start)",
		apply: func(c *Config, v string) error { return parseBool(&c.InsecureNoAPIKeys, v) }},
	{flag: "rejected-token-limit", env: "CLAIMSVC_REJECTED_TOKEN_LIMIT", def: "20/1h",
		usage: "per client IP, callers without an API key: device tokens that ThingsBoard rejected or claimsvc does not know, plus claims still unresolved, as N/window or off; over it: 429",
		apply: func(c *Config, v string) error { return parseRate(&c.RejectedTokenLimit, v) }},
	{flag: "max-waiters", env: "CLAIMSVC_MAX_WAITERS", def: "256",
		usage: "Prefer: wait requests held at once; beyond it a request is answered at once (202)",
		apply: func(c *Config, v string) error { return positiveInt(&c.MaxWaiters, v) }},
	{flag: "max-batches", env: "CLAIMSVC_MAX_BATCHES", def: "4",
		usage: "POST /claims:batch requests handled at once; beyond it a request waits up to 5s, then 503 with Retry-After",
		apply: func(c *Config, v string) error { return positiveInt(&c.MaxBatches, v) }},
	{flag: "rate-limit-ip", env: "CLAIMSVC_RATE_LIMIT_IP", def: "1000/1s",
		usage: "requests per client IP, as N/window (e.g. 1000/1s, 600/1m), or off; over it: 429 with Retry-After",
		apply: func(c *Config, v string) error { return parseRate(&c.RateLimitIP, v) }},
	{flag: "rate-limit-token", env: "CLAIMSVC_RATE_LIMIT_TOKEN", def: "20/1m",
		usage: "requests per device token (counted by its SHA-256) on the routes that name a device, as N/window, or off",
		apply: func(c *Config, v string) error { return parseRate(&c.RateLimitToken, v) }},
	{flag: "trusted-proxies", env: "CLAIMSVC_TRUSTED_PROXIES",
		usage: "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client IP (unset: the TCP peer is the client)",
		apply: parseCIDRs},
	{flag: "broker-probe-interval", env: "CLAIMSVC_BROKER_PROBE_INTERVAL", def: "1s",
		usage: "while the broker is unreachable, how often to probe it; when it answers, claims held back by the outage are sent at once",
		apply: func(c *Config, v string) error { return positiveDuration(&c.BrokerProbe, v) }},
	{flag: "broker-probe-token", env: "CLAIMSVC_BROKER_PROBE_TOKEN", secret: true,
		usage: "access token of a ThingsBoard device kept for the probe, which then logs in as it (unset: the probe only opens a connection and never logs in, so it never counts against ThingsBoard's per-IP limit on wrong credentials)",
		apply: func(c *Config, v string) error { c.BrokerProbeToken = v; return nil }},
	{flag: "lease-duration", env: "CLAIMSVC_LEASE_DURATION",
		usage: "how long a dispatcher owns a claim it is sending; a crashed replica's claims are sent again after it (unset: 2×(connect+ack timeouts)+30s)",
		apply: func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			return positiveDuration(&c.LeaseFor, v)
		}},
	{flag: "stats-interval", env: "CLAIMSVC_STATS_INTERVAL", def: "5s",
		usage: "how often the backlog gauges (claimsvc_pending_claims, claimsvc_oldest_pending_age_seconds) refresh",
		apply: func(c *Config, v string) error { return positiveDuration(&c.StatsInterval, v) }},
	{flag: "workers", env: "CLAIMSVC_WORKERS", def: "32", usage: "concurrent MQTT deliveries (bounds goroutines and connections)",
		apply: func(c *Config, v string) error { return positiveInt(&c.Workers, v) }},
	{flag: "default-duration-ms", env: "CLAIMSVC_DEFAULT_DURATION_MS",
		usage: "durationMs for claims that give none (unset: leave it out and let ThingsBoard apply its 24 h)",
		apply: parseDefaultDuration},
	{flag: "tb-claim-hold", env: "CLAIMSVC_TB_CLAIM_HOLD", def: "24h",
		usage: "after a device-side delivery, refuse (409) a different claim for the device this long: ThingsBoard ignores it while the first is cached",
		apply: func(c *Config, v string) error { return nonNegativeDuration(&c.TBClaimHold, v) }},
	{flag: "delivery", env: "CLAIMSVC_DELIVERY", def: "mqtt",
		usage: "delivery of a claim that names none: mqtt (device-side, MQTT), http (device-side, ThingsBoard's HTTP device API) or attribute (server-side claimingData through the REST API; survives ThingsBoard restarts)",
		apply: func(c *Config, v string) error {
			if v != "mqtt" && v != "http" && v != "attribute" {
				return errors.New("want mqtt, http or attribute")
			}
			c.Delivery = v
			return nil
		}},
	{flag: "tb-claim-cache-ttl", env: "CLAIMSVC_TB_CLAIM_CACHE_TTL", def: "24h",
		usage: "ThingsBoard's claim cache TTL (cache.specs.claimDevices.timeToLiveInMinutes): device-side claims (mqtt, http) may not ask for a longer durationMs",
		apply: func(c *Config, v string) error { return positiveDuration(&c.TBClaimCacheTTL, v) }},
	{flag: "tb-url", env: "CLAIMSVC_TB_URL",
		usage: "ThingsBoard's base URL (http:// or https://) for the http and attribute deliveries and the tracker, e.g. https://thingsboard.example.com",
		apply: parseTBURL},
	{flag: "tb-api-key", env: "CLAIMSVC_TB_API_KEY", secret: true,
		usage: "a ThingsBoard API key of a tenant administrator (ThingsBoard 4.3+; sent as X-Authorization: ApiKey …)",
		apply: func(c *Config, v string) error { c.TB.APIKey = v; return nil }},
	{flag: "tb-username", env: "CLAIMSVC_TB_USERNAME",
		usage: "instead of an API key: a tenant administrator's user name (logs in, refreshes its token)",
		apply: func(c *Config, v string) error { c.TB.Username = v; return nil }},
	{flag: "tb-password", env: "CLAIMSVC_TB_PASSWORD", secret: true, usage: "that user's password",
		apply: func(c *Config, v string) error { c.TB.Password = v; return nil }},
	{flag: "tb-ca-file", env: "CLAIMSVC_TB_CA_FILE", usage: "PEM file of CAs to trust for an https:// ThingsBoard (default: the system's)",
		apply: func(c *Config, v string) error { c.TB.CAFile = v; return nil }},
	{flag: "tb-poll-interval", env: "CLAIMSVC_TB_POLL_INTERVAL", def: "30s",
		usage: "how often the tracker looks at each delivered claim's device in ThingsBoard (claimed? expired?)",
		apply: func(c *Config, v string) error { return positiveDuration(&c.TB.PollInterval, v) }},
	{flag: "max-pending-age", env: "CLAIMSVC_MAX_PENDING_AGE", def: "168h", usage: "give up on a claim (failed) after it was pending this long",
		apply: func(c *Config, v string) error { return positiveDuration(&c.MaxPendingAge, v) }},
	{flag: "shutdown-timeout", env: "CLAIMSVC_SHUTDOWN_TIMEOUT", def: "20s", usage: "how long shutdown may wait for requests and deliveries under way",
		apply: func(c *Config, v string) error { return positiveDuration(&c.ShutdownTimeout, v) }},
	{flag: "failed-secret-retention", env: "CLAIMSVC_FAILED_SECRET_RETENTION", def: "720h",
		usage: "erase the token and secret of a claim failed this long (it can no longer be retried), as a duration of at least 1h, or off",
		apply: func(c *Config, v string) error { return parseRetention(&c.FailedSecretRetention, v) }},
	{flag: "claim-retention", env: "CLAIMSVC_CLAIM_RETENTION", def: "2160h",
		usage: "delete final claims (and their events and Idempotency-Keys) this long after their last change, except each device's newest, as a duration of at least CLAIMSVC_TB_CLAIM_HOLD, or off",
		apply: func(c *Config, v string) error { return parseRetention(&c.ClaimRetention, v) }},
	{flag: "idempotency-key-retention", env: "CLAIMSVC_IDEMPOTENCY_KEY_RETENTION", def: "168h",
		usage: "forget an Idempotency-Key this long after its request, as a duration of at least 1h, or off",
		apply: func(c *Config, v string) error { return parseRetention(&c.IdempotencyKeyRetention, v) }},
	{flag: "retention-interval", env: "CLAIMSVC_RETENTION_INTERVAL", def: "1h",
		usage: "how often the retention sweep (the three settings above) runs; one replica at a time",
		apply: func(c *Config, v string) error { return positiveDuration(&c.RetentionInterval, v) }},
	{flag: "log-level", env: "CLAIMSVC_LOG_LEVEL", def: "info", usage: "debug, info, warn or error",
		apply: func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
	{flag: "log-format", env: "CLAIMSVC_LOG_FORMAT", def: "json", usage: "json or text",
		apply: func(c *Config, v string) error {
			if v != "json" && v != "text" {
				return errors.New("want json or text")
			}
			c.LogFormat = v
			return nil
		}},
	{flag: "demo", env: "CLAIMSVC_DEMO", def: "false", boolean: true,
		usage: "run an in-process ThingsBoard emulator with its demo data and deliver to it (ignores --mqtt-url)",
		apply: func(c *Config, v string) error { return parseBool(&c.Demo, v) }},
	{flag: "demo-mqtt-addr", env: "CLAIMSVC_DEMO_MQTT_ADDR", def: "127.0.0.1:1884", usage: "with --demo: the emulator's MQTT address",
		apply: func(c *Config, v string) error { c.DemoMQTTAddr = v; return nil }},
	{flag: "demo-http-addr", env: "CLAIMSVC_DEMO_HTTP_ADDR", def: "127.0.0.1:9090", usage: "with --demo: the emulator's ThingsBoard REST address",
		apply: func(c *Config, v string) error { c.DemoHTTPAddr = v; return nil }},
	{flag: "pprof-addr", env: "CLAIMSVC_PPROF_ADDR",
		usage: "serve Go's net/http/pprof profiles on this address, e.g. 127.0.0.1:6060 (unset: off; never expose it publicly)",
		apply: func(c *Config, v string) error { c.PprofAddr = v; return nil }},
	{flag: "console", env: "CLAIMSVC_CONSOLE", def: "true", boolean: true,
		usage: "serve the operator console at /ui/ (a login with an API key whenever CLAIMSVC_API_KEYS is set)",
		apply: func(c *Config, v string) error { return parseBool(&c.Console, v) }},
}

// rawValue collects a flag's text; parsing happens after env and defaults.
type rawValue struct {
	v       *string
	set     *bool
	boolean bool
}

func (r rawValue) String() string   { return "" }
func (r rawValue) IsBoolFlag() bool { return r.boolean }
func (r rawValue) Set(s string) error {
	*r.v, *r.set = s, true
	return nil
}

// Command names a command that takes the service's settings, for its
// --help: serve, migrate, rekey.
type Command struct {
	Name  string // as typed after claimsvc
	About string // what it does, a sentence or two
}

// Serve is the serve command.
var Serve = Command{Name: "serve", About: "Runs the HTTP API and the delivery dispatcher."}

// Parse reads the serve settings from args and the environment.
func Parse(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	return ParseFor(Serve, args, getenv, out)
}

// ParseFor reads the settings for cmd from args and the environment; its
// --help names cmd.
func ParseFor(cmd Command, args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("claimsvc "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: claimsvc %s [flags]\n\n%s\n\nFlags (each also an environment variable; a flag wins):\n", cmd.Name, cmd.About)
		PrintFlags(out)
	}
	raw := make([]string, len(settings))
	set := make([]bool, len(settings))
	for i, s := range settings {
		fs.Var(rawValue{v: &raw[i], set: &set[i], boolean: s.boolean}, s.flag, s.usage)
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (see claimsvc serve --help)", fs.Arg(0))
	}
	c := Config{given: map[string]bool{}}
	for i, s := range settings {
		v, from := s.def, "default"
		switch {
		case set[i] && s.secret:
			return Config{}, secretFlagError(s)
		case set[i]:
			v, from = raw[i], "--"+s.flag
		default:
			e, src, err := fromEnv(s, getenv)
			if err != nil {
				return Config{}, err
			}
			if e != "" {
				v, from = e, src
			}
		}
		c.given[s.flag] = from != "default"
		if err := s.apply(&c, v); err != nil {
			return Config{}, fmt.Errorf("%s %s: %w", from, shown(s, v), err)
		}
	}
	if err := c.TB.check(); err != nil {
		return Config{}, err
	}
	// The main pool serves the intake committers, the tracker's looks (4 at
	// once, each of which may hold a connection while ThingsBoard answers),
	// the retention sweep and the readiness ping at the same time: fewer
	// connections make /readyz fail whenever intake is slow.
	if need := c.IntakeCommitters + 6; c.DBMaxConns < need {
		return Config{}, fmt.Errorf("CLAIMSVC_DB_MAX_CONNS %d: at least %d with %d intake committers (they, the tracker, the retention "+
			"sweep and readiness share the pool)", c.DBMaxConns, need, c.IntakeCommitters)
	}
	if c.RequireAPIKey && len(c.APIKeyHashes) == 0 {
		return Config{}, errors.New("CLAIMSVC_REQUIRE_API_KEY is true but CLAIMSVC_API_KEYS names no key: nobody could call the claim routes")
	}
	if err := c.checkSecurity(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// PrintFlags writes the settings table for --help.
func PrintFlags(out io.Writer) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	for _, s := range settings {
		def := ""
		if s.def != "" {
			def = " (default " + s.def + ")"
		}
		if s.secret {
			fmt.Fprintf(tw, "  (secret)\t%s, %s_FILE\t%s (environment or file only, never a flag)\n", s.env, s.env, s.usage)
			continue
		}
		fmt.Fprintf(tw, "  --%s\t%s\t%s%s\n", s.flag, s.env, s.usage, def)
	}
	tw.Flush()
}

// LookupEnv returns the variable that goes with a flag name ("" if none).
func LookupEnv(flagName string) string {
	for _, s := range settings {
		if s.flag == flagName {
			return s.env
		}
	}
	return ""
}

func positiveInt(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return errors.New("want a whole number of at least 1")
	}
	*dst = n
	return nil
}

func parseBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	*dst = b
	return nil
}

func positiveDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("want a positive duration such as 10s, 5m or 24h")
	}
	*dst = d
	return nil
}

func nonNegativeDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return errors.New("want a duration such as 0s, 5m or 24h")
	}
	*dst = d
	return nil
}

func parseDefaultDuration(c *Config, v string) error {
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > 31_536_000_000 {
		return errors.New("want milliseconds from 1 to 31536000000 (365 days)")
	}
	c.DefaultDurationMs = n
	return nil
}

func parseTBURL(c *Config, v string) error {
	c.TB.URL = ""
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want http://host[:port] or https://host[:port]")
	}
	if u.User != nil {
		return errors.New("must not carry credentials: use CLAIMSVC_TB_API_KEY or CLAIMSVC_TB_USERNAME/CLAIMSVC_TB_PASSWORD")
	}
	c.TB.URL = strings.TrimRight(v, "/")
	return nil
}

// check refuses settings that cannot work together.
func (t ThingsBoard) check() error {
	switch {
	case t.APIKey != "" && (t.Username != "" || t.Password != ""):
		return errors.New("CLAIMSVC_TB_API_KEY and CLAIMSVC_TB_USERNAME/CLAIMSVC_TB_PASSWORD are both set: give one way to log in to ThingsBoard")
	case (t.Username == "") != (t.Password == ""):
		return errors.New("CLAIMSVC_TB_USERNAME and CLAIMSVC_TB_PASSWORD go together")
	case t.URL == "" && (t.APIKey != "" || t.Username != ""):
		return errors.New("ThingsBoard credentials are set but CLAIMSVC_TB_URL is not")
	}
	return nil
}

// shown is a refused value as its error quotes it: never a secret, and never
// the credentials of a URL (CLAIMSVC_TB_URL refuses them, and its error must
// not print them).
func shown(s setting, v string) string {
	if s.secret {
		return "(value hidden)"
	}
	if strings.Contains(v, "@") {
		u, err := url.Parse(v)
		if err != nil || u.User == nil {
			return "(value hidden: it may hold credentials)"
		}
		u.User = nil
		return strconv.Quote(u.String()) + " (with its credentials, not shown)"
	}
	return strconv.Quote(v)
}

func parseKeyHashes(c *Config, v string) error {
	c.APIKeyHashes = nil
	for _, h := range strings.Split(v, ",") {
		// sha256sum's own output ("<hex>  -") is accepted as it is.
		h = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(h), " -"))
		if h == "" {
			continue
		}
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return errors.New("want SHA-256 digests as 64 hex characters, comma-separated (the digests, not the keys)")
		}
		c.APIKeyHashes = append(c.APIKeyHashes, b)
	}
	return nil
}

// EnvVars lists every environment variable serve reads, with the _FILE
// variable of each secret.
func EnvVars() []string {
	out := make([]string, 0, len(settings)+4)
	for _, s := range settings {
		out = append(out, s.env)
		if s.secret {
			out = append(out, s.env+"_FILE")
		}
	}
	return out
}

// SecretEnvVars lists the settings that are secrets: read only from the
// environment or from the file their _FILE variable names.
func SecretEnvVars() []string {
	var out []string
	for _, s := range settings {
		if s.secret {
			out = append(out, s.env)
		}
	}
	return out
}

// Rate is N requests per window (Per); N = 0 means no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// parseRate reads "N/window" (window a duration such as 1s or 1m, or just a
// unit: s, m, h), or "off" / "0" for no limit.
func parseRate(dst *Rate, v string) error {
	*dst = Rate{}
	if v == "off" || v == "0" {
		return nil
	}
	n, per, ok := strings.Cut(v, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		return errors.New("want N/window such as 1000/1s or 20/1m, or off")
	}
	if per == "s" || per == "m" || per == "h" {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d < time.Second {
		return errors.New("want N/window with a window of at least 1s, such as 1000/1s or 20/1m, or off")
	}
	*dst = Rate{N: count, Per: d}
	return nil
}

func parseCIDRs(c *Config, v string) error {
	c.TrustedProxies = nil
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, err := netip.ParsePrefix(p); err != nil {
			return fmt.Errorf("want CIDRs such as 10.0.0.0/8,127.0.0.1/32: %q is not one", p)
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	return nil
}
