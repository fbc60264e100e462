package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/claimsvc/claimsvc/api"
	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/config"
	"github.com/claimsvc/claimsvc/internal/dispatch"
	claimhttp "github.com/claimsvc/claimsvc/internal/http"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/notify"
	"github.com/claimsvc/claimsvc/internal/retention"
	"github.com/claimsvc/claimsvc/internal/seal"
	"github.com/claimsvc/claimsvc/internal/store"
	"github.com/claimsvc/claimsvc/internal/tbemu"
)

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openStore opens the database and, unless told not to, migrates it.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, sealer *seal.Sealer) (*store.Store, error) {
	st, err := store.Open(ctx, cfg.DatabaseURL, int32(cfg.DBMaxConns), sealer,
		store.WithGroupCommit(store.GroupCommit{Committers: cfg.IntakeCommitters, MaxBatch: cfg.IntakeBatch}))
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
	log.Info("starting claimsvc", "version", buildVersion(), "http_addr", cfg.HTTPAddr, "workers", cfg.Workers)

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
		emu, err := tbemu.Start(ctx, emuCfg)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer emu.Close()
		mqttURL = "tcp://" + emu.MQTTAddr()
		log.Info("demo mode: delivering to the in-process ThingsBoard emulator instead of --mqtt-url",
			"mqtt", mqttURL, "thingsboard_rest", emu.HTTPURL(), "customer", "customerA@thingsboard.org / customer",
			"claimable_devices", "DHT11 Demo Device (DHT11_DEMO_TOKEN), Raspberry Pi Demo Device (RASPBERRY_PI_DEMO_TOKEN)")
	}
	pub, err := mqtt.New(mqtt.Config{URL: mqttURL, CAFile: cfg.MQTTCAFile, ConnectTimeout: cfg.MQTTConnectTimeout, AckTimeout: cfg.MQTTAckTimeout})
	if err != nil {
		return err
	}

	st, err := openStore(ctx, cfg, log, sealer)
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
	if floor := cfg.MQTTConnectTimeout + cfg.MQTTAckTimeout + time.Second; leaseFor < floor {
		return fmt.Errorf("CLAIMSVC_LEASE_DURATION %s: must exceed one attempt (connect + ack timeouts + 1s = %s)", leaseFor, floor)
	}
	m := metrics.New()
	announceInsecure(log, cfg, sealer, m)
	hub := notify.New()
	disp := dispatch.New(st, pub, dispatch.Config{
		Workers: cfg.Workers, MaxPendingAge: cfg.MaxPendingAge,
		LeaseFor: leaseFor, ReapInterval: min(15*time.Second, leaseFor/4),
		AttemptMax:    cfg.MQTTConnectTimeout + cfg.MQTTAckTimeout + time.Second,
		ShutdownGrace: cfg.ShutdownTimeout / 2,
		ProbeInterval: cfg.BrokerProbe, StatsInterval: cfg.StatsInterval,
	}, log.With("component", "dispatcher"), m, hub.Done)

	var draining atomic.Bool
	guard := claimhttp.NewTokenGuard(claimhttp.Rate{N: cfg.RejectedTokenLimit.N, Per: cfg.RejectedTokenLimit.Per}, st, m,
		log.With("component", "http"))
	handler := claimhttp.NewServer(claimhttp.Deps{
		Store: st, Validator: claim.NewValidator(cfg.DefaultDurationMs), Metrics: m, Hub: hub,
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
		"api_keys", len(cfg.APIKeyHashes), "require_api_key", cfg.RequireAPIKey)

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
