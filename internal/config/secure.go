package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/claimsvc/claimsvc/internal/seal"
)

// maxSecretFile bounds what a _FILE variable may point at.
const maxSecretFile = 64 << 10

// secretFlagError refuses a secret given as a flag: argv is readable by every
// user of the machine (ps, /proc/PID/cmdline) and by pprof's cmdline page.
func secretFlagError(s setting) error {
	return fmt.Errorf("--%s: secrets are never taken from the command line, where every user of the machine can read them; "+
		"set %s, or %s_FILE naming a file that holds it", s.flag, s.env, s.env)
}

// fromEnv reads a setting from its variable, or for a secret also from the
// file named by the variable with _FILE appended (a Kubernetes or Docker
// secret mounted as a file). Both at once is an error. src names where the
// value came from, for messages.
func fromEnv(s setting, getenv func(string) string) (v, src string, err error) {
	v, src = getenv(s.env), s.env
	if !s.secret {
		return v, src, nil
	}
	path := getenv(s.env + "_FILE")
	if path == "" {
		// A secret copied from a file into a variable (a Kubernetes
		// secretKeyRef, an env file) often keeps its line end: taken off, as
		// it is from a _FILE.
		return strings.TrimRight(v, "\r\n"), src, nil
	}
	if v != "" {
		return "", "", fmt.Errorf("both %s and %s_FILE are set: set one", s.env, s.env)
	}
	src = s.env + "_FILE"
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", src, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	switch {
	case err != nil:
		return "", "", fmt.Errorf("%s: %w", src, err)
	case len(b) > maxSecretFile:
		return "", "", fmt.Errorf("%s: %s is larger than %d bytes", src, path, maxSecretFile)
	}
	v = strings.TrimSpace(string(b))
	if v == "" {
		return "", "", fmt.Errorf("%s: %s is empty", src, path)
	}
	return v, src, nil
}

// parseRetention reads a duration of at least an hour, or "off" (0).
func parseRetention(dst *time.Duration, v string) error {
	if v == "off" || v == "0" {
		*dst = 0
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Hour {
		return errors.New("want a duration of at least 1h, such as 720h, or off")
	}
	*dst = d
	return nil
}

// checkSecurity validates what the security settings say together.
func (c *Config) checkSecurity() error {
	if c.DataKey != "" && c.DataKeyring != "" {
		return errors.New("both CLAIMSVC_DATA_KEY and CLAIMSVC_DATA_KEYS are set: put every key in CLAIMSVC_DATA_KEYS (the first encrypts)")
	}
	raw := c.DataKey
	if c.DataKeyring != "" {
		raw = c.DataKeyring
	}
	c.DataKeys = nil
	for i, part := range strings.Split(raw, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, err := seal.ParseKey(part)
		if err != nil {
			return fmt.Errorf("CLAIMSVC_DATA_KEYS, key %d (value hidden): %w", i+1, err)
		}
		c.DataKeys = append(c.DataKeys, k)
	}
	if _, err := seal.New(c.DataKeys); err != nil {
		return fmt.Errorf("CLAIMSVC_DATA_KEYS (values hidden): %w", err)
	}
	if c.ClaimRetention > 0 && c.ClaimRetention < c.TBClaimHold {
		return fmt.Errorf("CLAIMSVC_CLAIM_RETENTION %s is shorter than CLAIMSVC_TB_CLAIM_HOLD %s: the hold rule needs the claims it weighs",
			c.ClaimRetention, c.TBClaimHold)
	}
	return nil
}

// Insecure lists the explicit opt-outs in effect, for the loud start-up log
// and the claimsvc_insecure_settings metric.
func (c Config) Insecure() []string {
	var out []string
	if len(c.APIKeyHashes) == 0 {
		out = append(out, "no_api_keys")
	}
	if len(c.DataKeys) == 0 {
		out = append(out, "no_data_key")
	}
	return out
}

// ForServe checks what `serve` needs on top of Parse (migrate and rekey do
// not): API keys and a data key, unless the demo or an explicit opt-out says
// otherwise (docs/security.md §2). In demo mode without API keys every route is
// open, so the API listens on loopback only: an address without a host (or
// an unspecified one) becomes 127.0.0.1, and another host is refused.
func (c *Config) ForServe() error {
	if len(c.APIKeyHashes) == 0 && !c.Demo && !c.InsecureNoAPIKeys {
		return errors.New("no API keys: without CLAIMSVC_API_KEYS anyone who reaches the port could list, cancel and retry claims. " +
			"Set CLAIMSVC_API_KEYS to the SHA-256 digests of your keys (printf %s \"$KEY\" | sha256sum | cut -d' ' -f1), " +
			"or run the demo (--demo), or opt out explicitly with CLAIMSVC_INSECURE_NO_API_KEYS=true")
	}
	if len(c.DataKeys) == 0 && !c.Demo && !c.InsecureNoDataKey {
		return errors.New("no data key: device tokens and claim secrets would be stored unencrypted. " +
			"Set CLAIMSVC_DATA_KEY (or CLAIMSVC_DATA_KEY_FILE) to 32 random bytes in base64 (openssl rand -base64 32), " +
			"or run the demo (--demo), or opt out explicitly with CLAIMSVC_INSECURE_NO_DATA_KEY=true")
	}
	// Defaults that would refuse every claim that relies on them.
	deviceSide := c.Delivery == "mqtt" || c.Delivery == "http"
	if deviceSide && c.DefaultDurationMs > c.TBClaimCacheTTL.Milliseconds() {
		return fmt.Errorf("CLAIMSVC_DEFAULT_DURATION_MS %d is longer than CLAIMSVC_TB_CLAIM_CACHE_TTL (%s), the most a %s claim may ask "+
			"for: every claim without durationMs would be refused (422). Shorten it, or make the default delivery attribute",
			c.DefaultDurationMs, c.TBClaimCacheTTL, c.Delivery)
	}
	if !c.Demo && (c.Delivery == "http" || c.Delivery == "attribute") && c.TB.URL == "" {
		return fmt.Errorf("CLAIMSVC_DELIVERY=%s needs ThingsBoard's REST settings (CLAIMSVC_TB_URL, and for attribute its credentials): "+
			"without them every claim that names no delivery would be refused (422)", c.Delivery)
	}
	if !c.Demo && c.Delivery == "attribute" && c.TB.APIKey == "" && c.TB.Username == "" {
		return errors.New("CLAIMSVC_DELIVERY=attribute needs ThingsBoard credentials (CLAIMSVC_TB_API_KEY, or CLAIMSVC_TB_USERNAME and " +
			"CLAIMSVC_TB_PASSWORD): without them every claim that names no delivery would be refused (422)")
	}
	if c.Demo && len(c.APIKeyHashes) == 0 {
		addr, err := loopbackOnly(c.HTTPAddr)
		if err != nil {
			return fmt.Errorf("--demo without API keys leaves every route open, so it listens on loopback only: %w "+
				"(set CLAIMSVC_API_KEYS to serve the demo on another address)", err)
		}
		c.HTTPAddr = addr
	}
	return nil
}

// loopbackOnly turns ":8080", "0.0.0.0:8080" or "[::]:8080" into
// "127.0.0.1:8080", keeps a loopback address, and refuses any other host.
func loopbackOnly(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("CLAIMSVC_HTTP_ADDR %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	if host == "localhost" {
		return addr, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return addr, nil
	}
	return "", fmt.Errorf("CLAIMSVC_HTTP_ADDR %q is not a loopback address", addr)
}
