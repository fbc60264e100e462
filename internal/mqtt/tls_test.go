package mqtt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/claimsvc/claimsvc/internal/claim"
	"github.com/claimsvc/claimsvc/internal/mqtt"
	"github.com/claimsvc/claimsvc/internal/mqtt/mosquittotest"
)

// testCA makes a CA and a server certificate for localhost / 127.0.0.1 signed
// by it, writes them as PEM into dir, and returns the file names.
func testCA(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write(name+"-ca.pem", "CERTIFICATE", caDER), write(name+"-server.pem", "CERTIFICATE", srvDER), write(name+"-server.key", "EC PRIVATE KEY", keyDER)
}

// TestTLSWithCAFile delivers over ssl:// and mqtts:// to a Mosquitto TLS
// listener whose certificate only the given CA file vouches for, and is
// refused (as an unreachable broker, so retried) without it or with another CA.
func TestTLSWithCAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, certFile, keyFile := testCA(t, dir, "good")
	otherCA, _, _ := testCA(t, dir, "other")
	b := mosquittotest.Start(t, mosquittotest.Options{CertFile: certFile, KeyFile: keyFile})
	_, port, _ := net.SplitHostPort(b.Addr())

	// A subscriber over TLS sees the claim arrive.
	got := make(chan []byte, 4)
	sub := subscribeTLS(t, "ssl://127.0.0.1:"+port, caFile, got)
	defer sub.Disconnect(0)

	for _, url := range []string{"ssl://127.0.0.1:" + port, "mqtts://localhost:" + port} {
		p, err := mqtt.New(mqtt.Config{URL: url, CAFile: caFile, ConnectTimeout: 3 * time.Second, AckTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(t.Context(), "claimsvc-tls", "TLS_DEVICE_TOKEN", []byte(`{"secretKey":"tls"}`)); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		select {
		case m := <-got:
			if string(m) != `{"secretKey":"tls"}` {
				t.Fatalf("payload %s", m)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the subscriber saw nothing", url)
		}
		if err := p.Probe(t.Context()); err != nil {
			t.Fatalf("probe over TLS: %v", err)
		}
	}

	for name, ca := range map[string]string{"system roots": "", "another CA": otherCA} {
		p, err := mqtt.New(mqtt.Config{URL: "mqtts://127.0.0.1:" + port, CAFile: ca, ConnectTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = p.Publish(t.Context(), "claimsvc-tls-bad", "TLS_DEVICE_TOKEN", []byte(`{}`))
		if err == nil || claim.KindOf(err) != claim.FailUnreachable {
			t.Fatalf("%s: want an unreachable-broker error, got %v", name, err)
		}
		if p.Probe(t.Context()) == nil {
			t.Fatalf("%s: the probe trusted an unknown certificate", name)
		}
	}
	// Plain MQTT to the TLS port does not get through either.
	p, _ := mqtt.New(mqtt.Config{URL: "tcp://127.0.0.1:" + port, ConnectTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := p.Publish(ctx, "claimsvc-plain", "TLS_DEVICE_TOKEN", []byte(`{}`)); err == nil {
		t.Fatal("plain MQTT to a TLS listener succeeded")
	}
}

func subscribeTLS(t *testing.T, url, caFile string, got chan<- []byte) paho.Client {
	t.Helper()
	pemBytes, _ := os.ReadFile(caFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("tls-subscriber").SetProtocolVersion(4).
		SetAutoReconnect(false).SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"})
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	tok := c.Subscribe(mqtt.ClaimTopic, 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return c
}
