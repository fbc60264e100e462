package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/config"
	"github.com/claimsvc/claimsvc/internal/dispatch"
	"github.com/claimsvc/claimsvc/internal/metrics"
	"github.com/claimsvc/claimsvc/internal/tbrest"
	"github.com/claimsvc/claimsvc/internal/track"
)

// thingsBoard opens the client for ThingsBoard's REST and HTTP device APIs
// when CLAIMSVC_TB_URL is set (nil otherwise), and adds the deliveries it
// makes possible to senders.
//
// Its requests in flight are bounded by workers (each worker sends one claim
// at a time), and at least 8 (the tracker's and revocations' besides).
func thingsBoard(cfg config.ThingsBoard, workers int, log *slog.Logger, m *metrics.Metrics, senders dispatch.Senders) (*tbrest.Client, error) {
	if cfg.URL == "" {
		return nil, nil
	}
	c, err := tbrest.New(tbrest.Config{
		BaseURL: cfg.URL, APIKey: cfg.APIKey, Username: cfg.Username, Password: cfg.Password, CAFile: cfg.CAFile,
		MaxConcurrent: max(8, workers+4),
		Logger:        log.With("component", "thingsboard"),
		OnRequest:     func(op, outcome string) { m.TBRequests.WithLabelValues(op, outcome).Inc() },
	})
	if err != nil {
		return nil, fmt.Errorf("ThingsBoard (CLAIMSVC_TB_*): %w", err)
	}
	senders[claim.DeliveryHTTP] = tbrest.HTTPSender{Client: c}
	if cfg.REST() {
		senders[claim.DeliveryAttribute] = tbrest.AttributeSender{Client: c}
	}
	return c, nil
}

// trackerAPI is the part of the REST client the tracker uses, with the
// errors it decides by.
type trackerAPI struct{ c *tbrest.Client }

var _ track.ThingsBoard = trackerAPI{}

func (a trackerAPI) DeviceByName(ctx context.Context, name string) (track.Device, error) {
	d, err := a.c.DeviceByName(ctx, name)
	return track.Device{ID: d.ID, CustomerID: d.CustomerID}, trackerErr(err)
}

func (a trackerAPI) Device(ctx context.Context, id string) (track.Device, error) {
	d, err := a.c.Device(ctx, id)
	return track.Device{ID: d.ID, CustomerID: d.CustomerID}, trackerErr(err)
}

func (a trackerAPI) DeleteClaimingData(ctx context.Context, deviceID string) error {
	return trackerErr(a.c.DeleteClaimingData(ctx, deviceID))
}

func trackerErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, tbrest.ErrNotFound):
		return fmt.Errorf("%w: %w", track.ErrNoDevice, err)
	case tbrest.IsUnauthorized(err):
		return claim.Failure(claim.FailUnauthorized, err)
	case tbrest.IsUnreachable(err):
		return claim.Failure(claim.FailUnreachable, err)
	}
	return claim.Failure(claim.FailTransient, err)
}

// restProbe tells whether ThingsBoard's HTTP APIs answer, for the breaker of
// the http and attribute deliveries: an authenticated call when claimsvc has
// REST credentials, else a TCP connection to ThingsBoard's address.
type restProbe struct {
	c    *tbrest.Client
	addr string // host:port of CLAIMSVC_TB_URL
}

func newRESTProbe(c *tbrest.Client, base string) (restProbe, error) {
	u, err := url.Parse(base)
	if err != nil {
		return restProbe{}, err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return restProbe{c: c, addr: net.JoinHostPort(u.Hostname(), port)}, nil
}

func (p restProbe) Probe(ctx context.Context) error {
	if p.c.HasCredentials() {
		return trackerErr(p.c.Check(ctx))
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return claim.Failure(claim.FailUnreachable, err)
	}
	return conn.Close()
}
