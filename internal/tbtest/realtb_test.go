package tbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Environment variables that select a real ThingsBoard for TestRealThingsBoard.
const (
	envTBURL     = "CLAIMSVC_TB_URL"      // e.g. http://localhost:9090 (REST + HTTP device API)
	envTBMQTTURL = "CLAIMSVC_TB_MQTT_URL" // e.g. tcp://localhost:1883; default: the REST host, port 1883
	envTBDocker  = "CLAIMSVC_TB_DOCKER"   // "1": start thingsboard/tb-postgres with testcontainers-go
	envTBImage   = "CLAIMSVC_TB_IMAGE"    // image for CLAIMSVC_TB_DOCKER; default thingsboard/tb-postgres
	envTBUser    = "CLAIMSVC_TB_TENANT"   // tenant admin "user:password"; default tenant@thingsboard.org:tenant
	envTBRequire = "CLAIMSVC_TB_REQUIRE"  // "1": fail instead of skipping when no ThingsBoard is available (CI)
)

// skip skips the test, or fails it when CLAIMSVC_TB_REQUIRE=1 so CI cannot pass by skipping.
func skip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv(envTBRequire) == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

const howToRun = `TestRealThingsBoard needs a real ThingsBoard. Either
  start one in Docker (takes minutes on the first run):
    CLAIMSVC_TB_DOCKER=1 go test ./internal/tbtest -run RealThingsBoard -v -timeout 30m
  or point it at a running ThingsBoard CE with the demo data loaded:
    CLAIMSVC_TB_URL=http://localhost:9090 CLAIMSVC_TB_MQTT_URL=tcp://localhost:1883 \
      go test ./internal/tbtest -run RealThingsBoard -v -timeout 30m
  (e.g. docker run -d -p 9090:9090 -p 1883:1883 thingsboard/tb-postgres)`

// TestRealThingsBoard runs the suite against a real ThingsBoard: a running one named by
// CLAIMSVC_TB_URL, or a thingsboard/tb-postgres container when CLAIMSVC_TB_DOCKER=1. Where the
// real ThingsBoard and the emulator disagree, the real one is right: fix tbemu and docs/thingsboard.md.
func TestRealThingsBoard(t *testing.T) {
	t.Parallel()
	var target Target
	switch {
	case os.Getenv(envTBURL) != "":
		target = existingTarget(t)
	case os.Getenv(envTBDocker) == "1":
		if testing.Short() {
			skip(t, "-short: not starting ThingsBoard in Docker")
		}
		target = dockerTarget(t)
	default:
		skip(t, "%s", howToRun)
	}
	if u := os.Getenv(envTBUser); u != "" {
		user, pass, ok := strings.Cut(u, ":")
		if !ok {
			t.Fatalf("%s must be user:password", envTBUser)
		}
		target.TenantUser, target.TenantPassword = user, pass
	}
	target.SettleDelay = 1500 * time.Millisecond
	waitForMQTT(t, target.MQTTAddr)
	Run(t, target)
}

// existingTarget reads CLAIMSVC_TB_URL and CLAIMSVC_TB_MQTT_URL.
func existingTarget(t *testing.T) Target {
	rest, err := url.Parse(os.Getenv(envTBURL))
	if err != nil || rest.Host == "" {
		t.Fatalf("%s=%q is not a URL like http://localhost:9090", envTBURL, os.Getenv(envTBURL))
	}
	mqttAddr := net.JoinHostPort(rest.Hostname(), "1883")
	if m := os.Getenv(envTBMQTTURL); m != "" {
		u, err := url.Parse(m)
		if err != nil || u.Host == "" || u.Port() == "" {
			t.Fatalf("%s=%q is not a URL like tcp://localhost:1883", envTBMQTTURL, m)
		}
		mqttAddr = u.Host
	}
	// A long-lived ThingsBoard is assumed to have the demo data (tb-postgres loads it).
	return Target{RESTURL: strings.TrimRight(rest.String(), "/"), MQTTAddr: mqttAddr, DemoData: os.Getenv("CLAIMSVC_TB_NO_DEMO") == ""}
}

// dockerTarget starts thingsboard/tb-postgres and waits until POST /api/auth/login answers 200.
func dockerTarget(t *testing.T) Target {
	skipIfNoDocker(t)
	image := os.Getenv(envTBImage)
	if image == "" {
		image = "thingsboard/tb-postgres"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	t.Logf("starting %s; the first start installs the schema and demo data and takes minutes", image)
	login := wait.ForHTTP("/api/auth/login").
		WithPort("9090/tcp").
		WithMethod("POST").
		WithHeaders(map[string]string{"Content-Type": "application/json"}).
		WithBody(strings.NewReader(`{"username":"tenant@thingsboard.org","password":"tenant"}`)).
		WithStatusCodeMatcher(func(status int) bool { return status == 200 }).
		WithPollInterval(2 * time.Second).
		WithStartupTimeout(15 * time.Minute)
	ctr, err := testcontainers.Run(ctx, image,
		testcontainers.WithExposedPorts("9090/tcp", "1883/tcp"),
		testcontainers.WithEnv(map[string]string{"TB_QUEUE_TYPE": "in-memory"}),
		testcontainers.WithWaitStrategy(login),
	)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		if ctr != nil {
			if rc, lerr := ctr.Logs(context.Background()); lerr == nil {
				buf := make([]byte, 64<<10)
				n, _ := rc.Read(buf)
				rc.Close()
				t.Logf("container log (start):\n%s", buf[:n])
			}
		}
		t.Fatalf("start %s: %v", image, err)
	}
	restURL, err := ctr.PortEndpoint(ctx, "9090/tcp", "http")
	if err != nil {
		t.Fatalf("REST endpoint: %v", err)
	}
	mqttAddr, err := ctr.PortEndpoint(ctx, "1883/tcp", "")
	if err != nil {
		t.Fatalf("MQTT endpoint: %v", err)
	}
	t.Logf("ThingsBoard ready: REST %s, MQTT %s", restURL, mqttAddr)
	return Target{RESTURL: restURL, MQTTAddr: mqttAddr, DemoData: true}
}

// skipIfNoDocker is testcontainers.SkipIfProviderIsNotHealthy with a deadline, so a missing or
// hung Docker engine skips the test quickly instead of blocking it.
func skipIfNoDocker(t *testing.T) {
	t.Helper()
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		provider, err := testcontainers.ProviderDefault.GetProvider()
		if err != nil {
			return err
		}
		defer provider.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		return provider.Health(ctx)
	}()
	if err != nil {
		skip(t, "%s=1 but no healthy Docker engine: %v\n\n%s", envTBDocker, err, howToRun)
	}
}

// waitForMQTT waits until MQTT CONNECT with the demo token gets CONNACK 0 (ThingsBoard opens
// its MQTT transport after the REST API), or any CONNACK when there is no demo data.
func waitForMQTT(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last error
	for attempt := 0; attempt < 90 && time.Now().Before(deadline); attempt++ {
		c, _, err := dialRaw(addr, "tbtest-ready", "DHT11_DEMO_TOKEN")
		if err == nil {
			c.close()
			return
		}
		last = err
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("MQTT at %s not ready: %v", addr, errors.Join(last))
}
