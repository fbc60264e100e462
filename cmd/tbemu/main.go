// Command tbemu runs the ThingsBoard claiming emulator (internal/tbemu): an MQTT broker with
// ThingsBoard's access-token authentication and claim topics, the HTTP device API, and the REST
// subset that device claiming needs. See docs/tbemu.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/claimsvc/claimsvc/internal/tbemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "tbemu:", err)
		os.Exit(2)
	}
}

// run parses args, starts the emulator and serves until ctx is done. Once both listeners are bound
// it prints "tbemu ready mqtt=HOST:PORT http=URL" on stdout; logs go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := tbemu.DefaultConfig()
	fs := flag.NewFlagSet("tbemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mqttAddr := fs.String("mqtt-addr", def.MQTTAddr, "MQTT listen address (ThingsBoard's device transport; the user name is the device access token)")
	httpAddr := fs.String("http-addr", def.HTTPAddr, "HTTP listen address for the REST API and the HTTP device API (9090 as in the tb-postgres image)")
	demo := fs.Bool("demo", false, "load ThingsBoard's demo data: tenant@thingsboard.org/tenant, customerA@thingsboard.org/customer, DHT11_DEMO_TOKEN, …")
	claimDuration := fs.Duration("claim-duration", def.ClaimDuration, "claim lifetime when a device sends no durationMs > 0 (security.claim.duration)")
	cacheTTL := fs.Duration("cache-ttl", def.CacheTTL, "expire-after-write time of the claim cache (cache.specs.claimDevices.timeToLiveInMinutes)")
	cacheSize := fs.Int("cache-size", def.CacheSize, "maximum number of cached device-side claims; 0 disables the cache as in ThingsBoard")
	allow := fs.Bool("allow-claiming-by-default", def.AllowClaimingByDefault, "any unassigned device may register a claim; if false, the SERVER attribute claimingAllowed=true is required (security.claim.allowClaimingByDefault)")
	cachePolicy := fs.String("cache-policy", string(def.CachePolicy), "what a full claim cache does with a new entry: tinylfu (Caffeine's W-TinyLFU, ThingsBoard's), oldest (evict the oldest write) or refuse-new")
	regDelay := fs.Duration("registration-delay", 0, "delay between acknowledging a device claim and registering it, to exercise racy clients")
	dataDir := fs.String("data-dir", "", "keep devices, profiles, customers, users, credentials, attributes and API keys in this directory across restarts (the claim cache always starts empty)")
	maxSessions := fs.Int("max-sessions-per-device", def.MaxSessionsPerDevice, "sessions a device may have open; a new one closes the oldest (actors.session.max_concurrent_sessions_per_device); a negative value means no limit")
	ipLimits := fs.Bool("ip-limits-enabled", def.IPLimitsEnabled, "block an address after too many MQTT connects with wrong credentials (transport.rate_limits.ip_limits_enabled)")
	maxWrong := fs.Int("max-wrong-credentials-per-ip", def.MaxWrongCredentialsPerIP, "wrong MQTT connects before an address is blocked (transport.rate_limits.max_wrong_credentials_per_ip)")
	ipBlock := fs.Duration("ip-block-timeout", def.IPBlockTimeout, "how long a blocked address stays blocked after its last failure (transport.rate_limits.ip_block_timeout)")
	deviceRate := fs.String("device-rate-limit", def.DeviceRateLimit, `messages per device, "capacity:seconds[,capacity:seconds…]" like "20:1,600:60"; empty means none (the tenant profile's transportDeviceMsgRateLimit)`)
	inactivity := fs.Duration("session-inactivity-timeout", def.SessionInactivityTimeout, "close an MQTT connection that sends nothing for this long (transport.sessions.inactivity_timeout)")
	jwtExp := fs.Duration("jwt-expiration", def.JWTExpiration, "lifetime of access tokens (security.jwt.tokenExpirationTime)")
	demoKeyFile := fs.String("demo-api-key-file", "", "with --demo, write the tenant administrator's demo API key to this file (mode 0600); it is never logged")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tbemu [flags]

tbemu emulates ThingsBoard CE for device claiming: MQTT v1/devices/me/claim and
v1/gateway/claim with access-token authentication (CONNACK 5 for an unknown
token), POST /api/v1/{token}/claim, and the REST calls for logging in (password
or API key), creating devices, device profiles, customers and users, server
attributes, and claiming devices as a customer. See docs/tbemu.md.

Example:
  tbemu --demo
  mosquitto_pub -h 127.0.0.1 -p 1883 -u DHT11_DEMO_TOKEN -t v1/devices/me/claim \
      -m '{"secretKey":"abc","durationMs":60000}' -q 1

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if *cacheSize < 0 {
		return errors.New("--cache-size must not be negative")
	}
	if *demoKeyFile != "" && !*demo {
		return errors.New("--demo-api-key-file needs --demo")
	}
	if *maxSessions == 0 {
		return errors.New("--max-sessions-per-device must not be 0 (negative: no limit)")
	}

	cfg := def
	cfg.MQTTAddr, cfg.HTTPAddr = *mqttAddr, *httpAddr
	cfg.Demo = *demo
	cfg.ClaimDuration, cfg.CacheTTL = *claimDuration, *cacheTTL
	cfg.CacheSize = *cacheSize
	if cfg.CacheSize == 0 {
		cfg.CacheSize = -1 // maxSize 0 disables the cache
	}
	cfg.CachePolicy = tbemu.CachePolicy(*cachePolicy)
	cfg.AllowClaimingByDefault = *allow
	cfg.RegistrationDelay = *regDelay
	cfg.DataDir = *dataDir
	cfg.MaxSessionsPerDevice = *maxSessions
	cfg.IPLimitsEnabled, cfg.MaxWrongCredentialsPerIP, cfg.IPBlockTimeout = *ipLimits, *maxWrong, *ipBlock
	cfg.DeviceRateLimit = *deviceRate
	cfg.SessionInactivityTimeout = *inactivity
	cfg.JWTExpiration = *jwtExp
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	emu, err := tbemu.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if *demoKeyFile != "" {
		if err := os.WriteFile(*demoKeyFile, []byte(emu.DemoAPIKey()+"\n"), 0o600); err != nil {
			_ = emu.Close()
			return fmt.Errorf("--demo-api-key-file: %w", err)
		}
	}
	fmt.Fprintf(stdout, "tbemu ready mqtt=%s http=%s\n", emu.MQTTAddr(), emu.HTTPURL())
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	done := make(chan error, 1)
	go func() { done <- emu.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("shutdown timed out")
	}
}
