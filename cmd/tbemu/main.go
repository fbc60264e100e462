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
	regDelay := fs.Duration("registration-delay", 0, "delay between acknowledging a device claim and registering it, to exercise racy clients")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tbemu [flags]

tbemu emulates ThingsBoard CE for device claiming: MQTT v1/devices/me/claim and
v1/gateway/claim with access-token authentication (CONNACK 5 for an unknown
token), POST /api/v1/{token}/claim, and the REST calls for logging in, creating
devices, customers and users, and claiming devices as a customer.

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

	cfg := def
	cfg.MQTTAddr, cfg.HTTPAddr = *mqttAddr, *httpAddr
	cfg.Demo = *demo
	cfg.ClaimDuration, cfg.CacheTTL = *claimDuration, *cacheTTL
	cfg.CacheSize = *cacheSize
	if cfg.CacheSize == 0 {
		cfg.CacheSize = -1 // maxSize 0 disables the cache
	}
	cfg.AllowClaimingByDefault = *allow
	cfg.RegistrationDelay = *regDelay
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	emu, err := tbemu.Start(ctx, cfg)
	if err != nil {
		return err
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
