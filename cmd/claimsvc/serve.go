package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/claimsvc/claimsvc/api"
	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/config"
	"github.com/claimsvc/claimsvc/internal/console"
	"github.com/claimsvc/claimsvc/internal/dispatch"
	"github.com/claimsvc/claimsvc/internal/health"
	claimhttp "github.com/claimsvc/claimsvc/internal/http"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/notify"
	"github.com/claimsvc/claimsvc/internal/retention"
	"github.com/claimsvc/claimsvc/internal/seal"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/tbemu"
	"github.com/claimsvc/claimsvc/internal/track"
)

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openStore opens the database and, unless told not to, migrates it.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, sealer *seal.Sealer, opts ...store.Option) (*store.Store, error) {
	st, err := store.Open(ctx, cfg.DatabaseURL, int32(cfg.DBMaxConns), sealer,
		append(opts, store.WithGroupCommit(store.GroupCommit{Committers: cfg.IntakeCommitters, MaxBatch: cfg.IntakeBatch}))...)
	if err != nil {
		return nil, err
	}
	if cfg.Migrate {
		applied, err := st.Migrate(ctx)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("migrate: %w", err)
		}
		for _, m := range applied {
			log.Info("applied migration", "migration", m)
		}
	}
	return st, nil
}

func migrate(ctx context.Context, cfg config.Config, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	cfg.Migrate = true
	st, err := openStore(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	st.Close()
	log.Info("database schema is up to date")
	return nil
}

// serve runs the API and the dispatcher until ctx ends, then shuts down in
// order: readiness fails, the HTTP server drains, the dispatcher finishes or
// releases what it holds, the pool closes.
func serve(ctx context.Context, cfg config.Config, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	if err := cfg.ForServe(); err != nil {
		return err
	}
	log.Info("starting claimsvc", "version", buildVersion(), "http_addr", cfg.HTTPAddr, "workers", cfg.Workers, "gogc", tuneGC())

	sealer, err := seal.New(cfg.DataKeys)
	if err != nil {
		return err
	}

	mqttURL := cfg.MQTTURL
	if cfg.Demo {
		emuCfg := tbemu.DefaultConfig()
		emuCfg.Demo = true
		emuCfg.MQTTAddr, emuCfg.HTTPAddr = cfg.DemoMQTTAddr, cfg.DemoHTTPAddr
		emuCfg.Logger = log.With("component", "tbemu")
		// Not ended by the signal: the emulator stops (defer) after the
		// dispatcher and the tracker, which talk to it until they stop.
		emu, err := tbemu.Start(context.WithoutCancel(ctx), emuCfg)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer emu.Close()
		mqttURL = "tcp://" + emu.MQTTAddr()
		// An API key of the demo tenant administrator, made by the emulator
		// at start (ThingsBoard 4.3+ style; never logged).
		cfg.TB = config.ThingsBoard{URL: emu.HTTPURL(), APIKey: emu.DemoAPIKey(), PollInterval: cfg.TB.PollInterval}
		if !cfg.Given("tb-poll-interval") {
			cfg.TB.PollInterval = 2 * time.Second // the walk-through shows "claimed" within seconds
		}
		log.Info("demo mode: delivering to the in-process ThingsBoard emulator instead of --mqtt-url and CLAIMSVC_TB_*",
			"mqtt", mqttURL, "thingsboard", emu.HTTPURL(), "tb_poll_interval", cfg.TB.PollInterval,
			"customer", "customerA@thingsboard.org / customer",
			"claimable_devices", demoDevices(tbemu.DemoClaimable()))
	}
	pub, err := mqtt.New(mqtt.Config{URL: mqttURL, CAFile: cfg.MQTTCAFile, ConnectTimeout: cfg.MQTTConnectTimeout,
		AckTimeout: cfg.MQTTAckTimeout, ProbeToken: claim.Token(cfg.BrokerProbeToken)})
	if err != nil {
		return err
	}

	m := metrics.New()
	st, err := openStore(ctx, cfg, log, sealer, store.WithSuperseded(func(n int) {
		m.Transitions.WithLabelValues(string(claim.StatusSuperseded)).Add(float64(n))
	}))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkKeys(ctx, st, log); err != nil {
		return err
	}

	leaseFor := cfg.LeaseFor
	if leaseFor == 0 {
		leaseFor = 2*(cfg.MQTTConnectTimeout+cfg.MQTTAckTimeout) + 30*time.Second
	}
	attemptMax := cfg.MQTTConnectTimeout + cfg.MQTTAckTimeout + time.Second
	// A claim starts only with a whole attempt's time left on its lease, and
	// the lease's clock starts before the claim is leased: a lease of one
	// attempt would hand every claim back unsent, and a little more would
	// send only those no worker kept waiting. Half an attempt more is the
	// floor: the time a leased-ahead claim may wait for a worker.
	if floor := attemptMax * 3 / 2; leaseFor < floor {
		return fmt.Errorf("CLAIMSVC_LEASE_DURATION %s: must be at least one and a half attempts (1.5 × (connect + ack timeouts + 1s) = %s)", leaseFor, floor)
	}
	board := health.New(func(name string, up bool) {
		v := 0.0
		if up {
			v = 1
		}
		m.DependencyUp.WithLabelValues(name).Set(v)
		switch name {
		case health.MQTT:
			m.BrokerUp.Set(v)
		case health.Database:
			m.DBUp.Set(v)
		}
	})
	senders := dispatch.Senders{claim.DeliveryMQTT: pub}
	tb, err := thingsBoard(cfg.TB, cfg.Workers, log, m, senders)
	if err != nil {
		return err
	}
	if tb != nil {
		defer tb.Close()
	}
	deps := []dispatch.Dependency{{Name: health.MQTT, Deliveries: []claim.Delivery{claim.DeliveryMQTT}, Probe: pub}}
	if tb != nil {
		probe, err := newRESTProbe(tb, cfg.TB.URL)
		if err != nil {
			return err
		}
		var restDeliveries []claim.Delivery
		for _, d := range []claim.Delivery{claim.DeliveryHTTP, claim.DeliveryAttribute} {
			if senders[d] != nil {
				restDeliveries = append(restDeliveries, d)
			}
		}
		deps = append(deps, dispatch.Dependency{Name: health.REST, Deliveries: restDeliveries, Probe: probe})
	}
	var canceller claimhttp.Canceller = st
	var tracker *track.Tracker
	if cfg.TB.REST() {
		tracker = track.New(st, trackerAPI{tb}, track.Config{Every: cfg.TB.PollInterval}, log.With("component", "tracker"), m, board)
		canceller = tracker
	}
	validator := claim.NewValidator(claim.Rules{
		DefaultDurationMs: cfg.DefaultDurationMs, DefaultDelivery: claim.Delivery(cfg.Delivery), CacheTTL: cfg.TBClaimCacheTTL,
		MissingREST: cfg.TB.MissingREST(), MissingDeviceAPI: cfg.TB.MissingDeviceAPI()})
	announceInsecure(log, cfg, sealer, m)
	hub := notify.New()
	disp := dispatch.New(st, senders, dispatch.Config{
		Workers: cfg.Workers, MaxPendingAge: cfg.MaxPendingAge,
		LeaseFor: leaseFor, ReapInterval: min(15*time.Second, leaseFor/4),
		AttemptMax:    attemptMax,
		ShutdownGrace: cfg.ShutdownTimeout / 2,
		ProbeInterval: cfg.BrokerProbe, StatsInterval: cfg.StatsInterval,
		Health: board, Dependencies: deps,
	}, log.With("component", "dispatcher"), m, hub.Done)

	var ui http.Handler
	if cfg.Console {
		con, err := console.New(ctx, console.Deps{Store: st, Canceller: canceller, Validator: validator, Hold: cfg.TBClaimHold,
			Wake: disp.Wake, KeyHashes: cfg.APIKeyHashes, Health: board, Log: log.With("component", "console"),
			Prefix: claimhttp.ConsolePrefix})
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
		defer con.Close() // stops imports under way, after the HTTP server
		ui = con.Handler()
	}

	var draining atomic.Bool
	guard := claimhttp.NewTokenGuard(claimhttp.Rate{N: cfg.RejectedTokenLimit.N, Per: cfg.RejectedTokenLimit.Per}, st, m,
		log.With("component", "http"))
	handler := claimhttp.NewServer(claimhttp.Deps{
		Store: st, Canceller: canceller, Health: board, Validator: validator, Metrics: m, Hub: hub, Console: ui,
		Log:    log.With("component", "http"),
		Access: claimhttp.Access{KeyHashes: cfg.APIKeyHashes, RequireForClaims: cfg.RequireAPIKey},
		Limits: claimhttp.Limits{
			PerIP:          claimhttp.Rate{N: cfg.RateLimitIP.N, Per: cfg.RateLimitIP.Per},
			PerToken:       claimhttp.Rate{N: cfg.RateLimitToken.N, Per: cfg.RateLimitToken.Per},
			TrustedProxies: cfg.TrustedProxies,
		},
		Guard: guard, Caps: claimhttp.Caps{Waiters: cfg.MaxWaiters, Batches: cfg.MaxBatches},
		Hold:     cfg.TBClaimHold,
		Draining: draining.Load, Wake: disp.Wake, OpenAPI: api.Spec,
	})
	srv := claimhttp.NewHTTPServer(handler, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "mqtt", pub.Broker(), "encrypted_at_rest", sealer.Encrypts(),
		"api_keys", len(cfg.APIKeyHashes), "require_api_key", cfg.RequireAPIKey,
		"deliveries", deliveries(senders), "default_delivery", cfg.Delivery, "tracker", tracker != nil,
		"console", cfg.Console)

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(ctx, cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	dispCtx, stopDisp := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDisp()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error { return disp.Run(dispCtx) })
	if tracker != nil {
		g.Go(func() error { return tracker.Run(dispCtx) })
	}
	g.Go(func() error { guard.Run(gctx); return nil })
	g.Go(func() error {
		retention.Run(gctx, st, retentionConfig(cfg), log.With("component", "retention"), m)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done() // a signal, or the HTTP server failed
		log.Info("shutting down")
		draining.Store(true)
		// Let load balancers see /readyz fail before the listener closes;
		// requests holding a Prefer: wait answer within a second.
		time.Sleep(min(2*time.Second, cfg.ShutdownTimeout/8))
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout/2)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("HTTP requests still open at the shutdown deadline were cut", "err", err)
			_ = srv.Close()
		}
		stopDisp()
		return nil
	})
	err = g.Wait()
	log.Info("stopped")
	return err
}

// deliveries lists the deliveries this process can make, for its log.
func deliveries(s dispatch.Senders) []string {
	var out []string
	for _, d := range claim.Deliveries {
		if s[d] != nil {
			out = append(out, string(d))
		}
	}
	return out
}

// demoDevices lists the emulator's claimable demo devices for the demo's
// start-up log: "name (token), …". Demo tokens are public demo data.
func demoDevices(devs []tbemu.DemoDevice) string {
	parts := make([]string, len(devs))
	for i, d := range devs {
		parts[i] = d.Name + " (" + d.Token + ")"
	}
	return strings.Join(parts, ", ")
}
