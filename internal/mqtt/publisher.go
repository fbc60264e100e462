// Package mqtt delivers one claim to ThingsBoard the way the device would:
// MQTT 3.1.1, clean session, username = the device's access token, QoS 1 on
// v1/devices/me/claim, one short-lived connection per attempt (docs/design.md §3).
//
// paho's own reconnect and connect-retry loops are off, and no paho token is
// ever waited on without a deadline (paho issue #613: Wait can hang forever).
package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/claimsvc/claimsvc/internal/claim"
)

// ClaimTopic is ThingsBoard's device claim topic (docs/thingsboard.md §1.2).
const ClaimTopic = "v1/devices/me/claim"

// Config configures a Publisher.
type Config struct {
	URL            string        // tcp://, mqtt://, ssl://, mqtts://
	CAFile         string        // PEM bundle to trust for ssl:// (empty: system roots)
	ConnectTimeout time.Duration // until CONNACK (default 10 s)
	AckTimeout     time.Duration // from PUBLISH until PUBACK (default 10 s)
}

// Publisher sends claims. It holds no connection between attempts and is safe
// for concurrent use; callers bound the concurrency.
type Publisher struct {
	broker         string
	tls            *tls.Config
	connectTimeout time.Duration
	ackTimeout     time.Duration
}

// New checks cfg and returns a Publisher.
func New(cfg Config) (*Publisher, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("MQTT URL %q: want scheme://host:port (tcp, mqtt, ssl or mqtts)", cfg.URL)
	}
	if u.User != nil {
		return nil, errors.New("MQTT URL: must not carry credentials: the username is each device's token")
	}
	p := &Publisher{connectTimeout: cfg.ConnectTimeout, ackTimeout: cfg.AckTimeout}
	if p.connectTimeout <= 0 {
		p.connectTimeout = 10 * time.Second
	}
	if p.ackTimeout <= 0 {
		p.ackTimeout = 10 * time.Second
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp", "mqtt":
		u.Scheme = "tcp"
		if cfg.CAFile != "" {
			return nil, errors.New("MQTT CA file given, but the MQTT URL is not ssl:// or mqtts://")
		}
	case "ssl", "mqtts":
		u.Scheme = "ssl"
		p.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("MQTT CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("MQTT CA file %s: no PEM certificates in it", cfg.CAFile)
			}
			p.tls.RootCAs = pool
		}
	default:
		return nil, fmt.Errorf("MQTT URL scheme %q: want tcp, mqtt, ssl or mqtts", u.Scheme)
	}
	if u.Port() == "" {
		port := "1883"
		if u.Scheme == "ssl" {
			port = "8883"
		}
		u.Host = u.Host + ":" + port
	}
	p.broker = u.Scheme + "://" + u.Host
	return p, nil
}

// Broker is the broker address in use (no credentials: safe to log).
func (p *Publisher) Broker() string { return p.broker }

// ConnackError is a CONNACK that refused the connection. Codes 4 and 5 mean
// ThingsBoard does not know the device token (a claim.FailRejected failure);
// 1-3 are transient.
type ConnackError struct{ ReturnCode byte }

func (e *ConnackError) Error() string {
	if e.ReturnCode == 4 || e.ReturnCode == 5 {
		return fmt.Sprintf("connection refused with CONNACK %d (%s): ThingsBoard does not know this device token", e.ReturnCode, connackText(e.ReturnCode))
	}
	return fmt.Sprintf("connection refused with CONNACK %d (%s)", e.ReturnCode, connackText(e.ReturnCode))
}

func connackText(rc byte) string {
	switch rc {
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorised"
	}
	return "unknown return code"
}

// Send delivers job j as its device: client id "claimsvc-{claim id}", the
// claim's payload (claim.Payload). See Publish for the errors.
func (p *Publisher) Send(ctx context.Context, j claim.Job) error {
	return p.Publish(ctx, "claimsvc-"+j.ID.String(), j.Token, j.Payload())
}

// Publish connects as the device, publishes payload at QoS 1 and returns once
// the broker's PUBACK arrives. An error carries its kind (claim.KindOf):
// claim.FailRejected for CONNACK 4/5 (do not retry), claim.FailUnreachable
// when no CONNACK came back, claim.FailTransient otherwise. Errors never
// contain the token.
func (p *Publisher) Publish(ctx context.Context, clientID string, token claim.Token, payload []byte) error {
	opts := paho.NewClientOptions().
		AddBroker(p.broker).
		SetClientID(clientID).
		SetUsername(string(token)).
		SetProtocolVersion(4). // else a refused CONNECT is retried as MQTT 3.1
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(p.connectTimeout).
		SetWriteTimeout(p.ackTimeout).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(false)
	if p.tls != nil {
		opts.SetTLSConfig(p.tls)
	}
	c := paho.NewClient(opts)

	if err := connect(ctx, c, p.connectTimeout); err != nil {
		return err
	}
	defer c.Disconnect(250)

	pt := c.Publish(ClaimTopic, 1, false, payload)
	if err := wait(ctx, pt, p.ackTimeout, "waiting for PUBACK"); err != nil {
		return claim.Failure(claim.FailTransient, err)
	}
	if err := pt.Error(); err != nil {
		return claim.Failure(claim.FailTransient, fmt.Errorf("publish: %w", err))
	}
	return nil
}

// connect opens c's connection. Without a CONNACK the error is a
// claim.FailUnreachable failure; a refusing CONNACK is a *ConnackError of
// kind claim.FailRejected (4, 5) or claim.FailTransient (other codes).
func connect(ctx context.Context, c paho.Client, timeout time.Duration) error {
	ct := c.Connect()
	if err := wait(ctx, ct, timeout+time.Second, "connect"); err != nil {
		// A connect still in flight ends by itself within ConnectTimeout.
		go c.Disconnect(0)
		if ctx.Err() != nil {
			return err
		}
		return unreachable(err)
	}
	if err := ct.Error(); err != nil {
		// Codes above 5 are paho's own (0xFE network error, 0xFF protocol
		// violation): no CONNACK was read.
		switch rc := ct.(*paho.ConnectToken).ReturnCode(); {
		case rc == 4 || rc == 5:
			return claim.Failure(claim.FailRejected, &ConnackError{ReturnCode: rc})
		case rc >= 1 && rc <= 3:
			return claim.Failure(claim.FailTransient, &ConnackError{ReturnCode: rc})
		}
		return unreachable(fmt.Errorf("connect: %w", err))
	}
	return nil
}

// unreachable means no CONNACK came back: the broker is down or cannot be
// reached (refused, timed out, TLS failure). It says nothing about the claim
// itself, so the dispatcher sends such claims again as soon as Probe
// succeeds.
func unreachable(err error) error {
	return claim.Failure(claim.FailUnreachable, fmt.Errorf("broker unreachable: %w", err))
}

// Probe checks that the broker answers MQTT: it connects with a probe
// identity (no device token) and disconnects. Any CONNACK, even a refusal
// (ThingsBoard answers 4 or 5 to an unknown user), means the broker is up.
func (p *Publisher) Probe(ctx context.Context) error {
	opts := paho.NewClientOptions().
		AddBroker(p.broker).
		SetClientID("claimsvc-probe-" + strconv.FormatInt(time.Now().UnixNano(), 36)).
		SetUsername("claimsvc-probe").
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(p.connectTimeout)
	if p.tls != nil {
		opts.SetTLSConfig(p.tls)
	}
	c := paho.NewClient(opts)
	err := connect(ctx, c, p.connectTimeout)
	if err == nil {
		c.Disconnect(0)
	}
	if claim.KindOf(err) == claim.FailUnreachable || ctx.Err() != nil {
		return err
	}
	return nil
}

// wait waits for a paho token, the context, or the timeout, whichever first.
func wait(ctx context.Context, t paho.Token, timeout time.Duration, what string) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("%s: timed out after %s", what, timeout)
	}
}
