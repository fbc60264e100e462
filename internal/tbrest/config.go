package tbrest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of the Config fields left zero.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultMaxConcurrent = 8
	DefaultRetries       = 3
)

// Config configures a Client. Only BaseURL is required: without credentials the Client can still
// use the HTTP device API (ClaimAsDevice), and its REST calls fail with ErrNoCredentials.
type Config struct {
	// BaseURL is ThingsBoard's HTTP address, "http://host:port" or "https://host[:port]", with an
	// optional path prefix. It must not hold credentials, a query or a fragment.
	BaseURL string
	// APIKey authenticates REST calls as "X-Authorization: ApiKey <key>" (ThingsBoard 4.3 and
	// later). Set it or Username and Password, not both.
	APIKey string
	// Username and Password are a tenant administrator's: the Client logs in and keeps a JWT.
	Username, Password string
	// CAFile is a PEM bundle to trust instead of the system roots, for an https BaseURL.
	CAFile string
	// Timeout bounds each HTTP request, from its connection to the end of its answer
	// (DefaultTimeout when zero).
	Timeout time.Duration
	// MaxConcurrent bounds the requests in flight, REST and device API together
	// (DefaultMaxConcurrent when zero).
	MaxConcurrent int
	// Retries is how many times a request that got no answer or a 5xx answer is sent again
	// (DefaultRetries when zero; negative: never).
	Retries int
	// Logger receives the Client's logs (nil discards them). They never hold a secret.
	Logger *slog.Logger
	// OnRequest, when set, is called once per HTTP request sent (logins and refreshes included),
	// with op one of the Op constants and outcome OutcomeOK or a Kind. It feeds a metric such as
	// claimsvc_tb_rest_requests_total{op,outcome}; it must be quick and safe for concurrent use.
	OnRequest func(op, outcome string)
}

// The operations, as given to Config.OnRequest and found in Error.Op.
const (
	OpLogin              = "login"
	OpRefresh            = "refresh"
	OpCheck              = "check"
	OpDeviceByName       = "device_by_name"
	OpDevice             = "device"
	OpSetClaimingData    = "set_claiming_data"
	OpDeleteClaimingData = "delete_claiming_data"
	OpDeviceClaim        = "device_claim"
)

// validate checks c and returns the parsed base URL (without a trailing slash) and the TLS
// settings. Its errors never quote BaseURL, which might hold a password.
func (c Config) validate() (string, *tls.Config, error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return "", nil, errors.New("tbrest: BaseURL is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", nil, errors.New("tbrest: BaseURL must start with http:// or https://")
	}
	if u.Host == "" || u.Opaque != "" {
		return "", nil, errors.New("tbrest: BaseURL has no host")
	}
	if u.User != nil {
		return "", nil, errors.New("tbrest: BaseURL must not hold credentials: use APIKey or Username and Password")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", nil, errors.New("tbrest: BaseURL must not have a query or a fragment")
	}
	if c.APIKey != "" && (c.Username != "" || c.Password != "") {
		return "", nil, errors.New("tbrest: set APIKey or Username and Password, not both")
	}
	if (c.Username == "") != (c.Password == "") {
		return "", nil, errors.New("tbrest: Username and Password go together")
	}
	if strings.ContainsAny(c.APIKey, "\r\n") {
		return "", nil, errors.New("tbrest: APIKey holds a line break")
	}
	if c.Timeout < 0 || c.MaxConcurrent < 0 {
		return "", nil, errors.New("tbrest: Timeout and MaxConcurrent must not be negative")
	}
	var tc *tls.Config
	if u.Scheme == "https" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return "", nil, fmt.Errorf("tbrest: CAFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return "", nil, fmt.Errorf("tbrest: CAFile %s: no PEM certificate in it", c.CAFile)
			}
			tc.RootCAs = pool
		}
	} else if c.CAFile != "" {
		return "", nil, errors.New("tbrest: CAFile needs an https:// BaseURL")
	}
	base := u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/")
	return base, tc, nil
}

// loopback reports whether host (host[:port]) names this machine.
func loopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
