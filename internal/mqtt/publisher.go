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
	"net"
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
	// ProbeToken, when set, is the access token of a device kept for the
	// probe: Probe then logs in with it and expects CONNACK 0. Empty: Probe
	// only opens a connection (and TLS), and never logs in, so it never
	// counts as a wrong credential against claimsvc's address (ThingsBoard's
	// per-IP blocking, docs/thingsboard.md §9).
	ProbeToken claim.Token
}

// Publisher sends claims. It holds no connection between attempts and is safe
// for concurrent use; callers bound the concurrency.
type Publisher struct {
	broker         string
	address        string // host:port, for the probe
	tls            *tls.Config
	connectTimeout time.Duration
	ackTimeout     time.Duration
	probeToken     claim.Token
}

// New checks cfg and returns a Publisher.
func New(cfg Config) (*Publisher, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		// Not quoted: a URL with credentials in it would print them.
		return nil, errors.New("MQTT URL: want scheme://host:port (tcp, mqtt, ssl or mqtts)")
	}
	if u.User != nil {
		return nil, errors.New("MQTT URL: must not carry credentials: the username is each device's token")
	}
	p := &Publisher{connectTimeout: cfg.ConnectTimeout, ackTimeout: cfg.AckTimeout, probeToken: cfg.ProbeToken}
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
	p.broker, p.address = u.Scheme+"://"+u.Host, u.Host
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
func (p *Publisher) Send(ctx context.Context, j claim.Job) (claim.Receipt, error) {
	return claim.Receipt{}, p.Publish(ctx, "claimsvc-"+j.ID.String(), j.Token, j.Payload())
}

// Publish connects as the device, publishes payload at QoS 1 and returns once
// the broker's PUBACK arrives. An error carries its kind (claim.KindOf) and a
// reason (claim.ReasonOf):
//   - claim.FailUnreachable ("unreachable"): no CONNACK came back;
//   - claim.FailRejected ("connack_4", "connack_5"): ThingsBoard does not know
//     the token; do not retry;
//   - claim.FailRefused ("connack_3", "closed_before_puback"): ThingsBoard
//     answered but refused this claim, which a device profile explains when
//     it repeats (docs/thingsboard.md §9);
//   - claim.FailTransient ("connack_1", "connack_2", "puback_timeout", …).
//
// Errors never contain the token.
func (p *Publisher) Publish(ctx context.Context, clientID string, token claim.Token, payload []byte) error {
	lost := make(chan error, 1)
	opts := p.options(clientID, token).
		SetWriteTimeout(p.ackTimeout).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	c := paho.NewClient(opts)

	if err := connect(ctx, c, p.connectTimeout); err != nil {
		return err
	}
	defer c.Disconnect(250)

	// paho's Publish itself waits (up to the write timeout) when the
	// connection is already gone: publish aside, so that a lost connection
	// is seen at once.
	published := make(chan paho.Token, 1)
	go func() { published <- c.Publish(ClaimTopic, 1, false, payload) }()
	timer := time.NewTimer(p.ackTimeout)
	defer timer.Stop()
	var pt paho.Token
	select {
	case pt = <-published:
	case err := <-lost:
		return closedBeforePuback(err)
	case <-ctx.Done():
		return claim.FailureFor(claim.FailTransient, "canceled", fmt.Errorf("publishing: %w", ctx.Err()))
	case <-timer.C:
		return claim.FailureFor(claim.FailTransient, "puback_timeout", fmt.Errorf("publishing: timed out after %s", p.ackTimeout))
	}
	select {
	case <-pt.Done():
	case err := <-lost:
		return closedBeforePuback(err)
	case <-ctx.Done():
		return claim.FailureFor(claim.FailTransient, "canceled", fmt.Errorf("waiting for PUBACK: %w", ctx.Err()))
	case <-timer.C:
		return claim.FailureFor(claim.FailTransient, "puback_timeout", fmt.Errorf("waiting for PUBACK: timed out after %s", p.ackTimeout))
	}
	if err := pt.Error(); err != nil { // paho may fail the token before it reports the lost connection
		return closedBeforePuback(err)
	}
	return nil
}

// closedBeforePuback: ThingsBoard closes the connection without PUBACK when
// the device's profile cannot take the claim (PROTOBUF payloads, a rate
// limit), and closes a device's older session when a new one opens: the
// device may have come back online and taken over.
func closedBeforePuback(err error) error {
	return claim.FailureFor(claim.FailRefused, "closed_before_puback", fmt.Errorf(
		"ThingsBoard closed the connection before PUBACK (%v): the device's profile may not take JSON claims over MQTT, "+
			"a rate limit may apply, or the device itself came online and took over its one session", err))
}

// options are the client options of every connection: MQTT 3.1.1 (else a
// refused CONNECT is retried as MQTT 3.1), a clean session, and none of
// paho's reconnect or retry loops.
func (p *Publisher) options(clientID string, username claim.Token) *paho.ClientOptions {
	opts := paho.NewClientOptions().
		AddBroker(p.broker).
		SetClientID(clientID).
		SetUsername(string(username)).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(p.connectTimeout)
	if p.tls != nil {
		opts.SetTLSConfig(p.tls)
	}
	return opts
}

// connect opens c's connection. Without a CONNACK the error is a
// claim.FailUnreachable failure; a refusing CONNACK is a *ConnackError of
// kind claim.FailRejected (4, 5), claim.FailRefused (3) or
// claim.FailTransient (1, 2).
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
		rc := ct.(*paho.ConnectToken).ReturnCode()
		reason := fmt.Sprintf("connack_%d", rc)
		switch {
		case rc == 4 || rc == 5:
			return claim.FailureFor(claim.FailRejected, reason, &ConnackError{ReturnCode: rc})
		case rc == 3:
			return claim.FailureFor(claim.FailRefused, reason, &ConnackError{ReturnCode: rc})
		case rc >= 1 && rc <= 2:
			return claim.FailureFor(claim.FailTransient, reason, &ConnackError{ReturnCode: rc})
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
	return claim.FailureFor(claim.FailUnreachable, "unreachable", fmt.Errorf("broker unreachable: %w", err))
}

// Probe checks that the broker answers, without logging in as anyone who
// does not exist: by default it opens a TCP connection (and the TLS
// handshake, for ssl://) and closes it, which ThingsBoard does not count as a
// wrong credential; with a ProbeToken it logs in as that device. A
// claim.FailUnreachable error means the broker does not answer; any other
// error means it answered but refused the probe's device (fix ProbeToken).
func (p *Publisher) Probe(ctx context.Context) error {
	if p.probeToken != "" {
		c := paho.NewClient(p.options("claimsvc-probe-"+strconv.FormatInt(time.Now().UnixNano(), 36), p.probeToken))
		if err := connect(ctx, c, p.connectTimeout); err != nil {
			return fmt.Errorf("probe with CLAIMSVC_BROKER_PROBE_TOKEN: %w", err)
		}
		c.Disconnect(0)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.connectTimeout)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", p.address)
	if err != nil {
		return unreachable(err)
	}
	defer conn.Close()
	if p.tls != nil {
		tc := tls.Client(conn, p.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return unreachable(err)
		}
		_ = tc.Close()
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
