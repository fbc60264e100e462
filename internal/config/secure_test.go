package config

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newKeyB64(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Secrets never come from argv (ps, /proc/PID/cmdline and pprof's cmdline
// page show it): every secret row refuses its flag, names the variable and
// the _FILE form, and never echoes the value.
func TestSecretsAreNeverTakenFromFlags(t *testing.T) {
	t.Parallel()
	n := 0
	for _, s := range settings {
		if !s.secret {
			continue
		}
		n++
		_, err := Parse([]string{"--" + s.flag + "=VALUE_FROM_ARGV"}, env(nil), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), s.env+"_FILE") || strings.Contains(err.Error(), "VALUE_FROM_ARGV") {
			t.Errorf("--%s: %v", s.flag, err)
		}
	}
	if n < 3 { // database-url, data-key, data-keys (and the ThingsBoard credentials once they exist)
		t.Fatalf("only %d secret settings", n)
	}
}

func TestSecretsFromFiles(t *testing.T) {
	t.Parallel()
	key := newKeyB64(t)
	c, err := Parse(nil, env(map[string]string{
		"CLAIMSVC_DATA_KEY_FILE":     writeFile(t, key+"\n"),
		"CLAIMSVC_DATABASE_URL_FILE": writeFile(t, "postgres://u:pw@db/claimsvc\n"),
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DataKeys) != 1 || c.DatabaseURL != "postgres://u:pw@db/claimsvc" {
		t.Fatalf("from files: %d keys, url %q", len(c.DataKeys), c.DatabaseURL)
	}
	for name, e := range map[string]map[string]string{
		"both the variable and the file": {"CLAIMSVC_DATA_KEY": key, "CLAIMSVC_DATA_KEY_FILE": writeFile(t, key)},
		"an empty file":                  {"CLAIMSVC_DATA_KEY_FILE": writeFile(t, " \n")},
		"a missing file":                 {"CLAIMSVC_DATA_KEY_FILE": filepath.Join(t.TempDir(), "nope")},
		"a bad key in the file":          {"CLAIMSVC_DATA_KEY_FILE": writeFile(t, "SECRET_BUT_NOT_A_KEY")},
	} {
		_, err := Parse(nil, env(e), &bytes.Buffer{})
		if err == nil || strings.Contains(err.Error(), "SECRET_BUT_NOT_A_KEY") || strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The mechanism is the table's: a row marked secret (the ThingsBoard
// password and API key rows will be) gets _FILE and the refusal of flags by
// that mark alone.
func TestSecretMechanismIsGeneral(t *testing.T) {
	t.Parallel()
	row := setting{flag: "tb-password", env: "CLAIMSVC_TB_PASSWORD", secret: true}
	v, src, err := fromEnv(row, env(map[string]string{"CLAIMSVC_TB_PASSWORD_FILE": writeFile(t, "hunter2\n")}))
	if err != nil || v != "hunter2" || src != "CLAIMSVC_TB_PASSWORD_FILE" {
		t.Fatalf("%q %q %v", v, src, err)
	}
	if err := secretFlagError(row); !strings.Contains(err.Error(), "CLAIMSVC_TB_PASSWORD_FILE") {
		t.Fatal(err)
	}
	plain := setting{flag: "http-addr", env: "CLAIMSVC_HTTP_ADDR"}
	if v, _, _ := fromEnv(plain, env(map[string]string{"CLAIMSVC_HTTP_ADDR_FILE": "/etc/passwd"})); v != "" {
		t.Fatal("a setting that is not secret read a _FILE")
	}
}

func TestKeyring(t *testing.T) {
	t.Parallel()
	a, b := newKeyB64(t), newKeyB64(t)
	c, err := Parse(nil, env(map[string]string{"CLAIMSVC_DATA_KEYS": a + ", " + b}), &bytes.Buffer{})
	if err != nil || len(c.DataKeys) != 2 {
		t.Fatalf("%d keys, %v", len(c.DataKeys), err)
	}
	for name, e := range map[string]map[string]string{
		"both variables": {"CLAIMSVC_DATA_KEY": a, "CLAIMSVC_DATA_KEYS": b},
		"a short key":    {"CLAIMSVC_DATA_KEYS": a + "," + base64.StdEncoding.EncodeToString([]byte("short"))},
		"a key twice":    {"CLAIMSVC_DATA_KEYS": a + "," + a},
	} {
		if _, err := Parse(nil, env(e), &bytes.Buffer{}); err == nil || strings.Contains(err.Error(), a) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRetentionSettings(t *testing.T) {
	t.Parallel()
	c, err := Parse(nil, env(nil), &bytes.Buffer{})
	if err != nil || c.FailedSecretRetention != 720*time.Hour || c.ClaimRetention != 2160*time.Hour ||
		c.IdempotencyKeyRetention != 168*time.Hour || c.RetentionInterval != time.Hour {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = Parse([]string{"--claim-retention=off", "--failed-secret-retention=off"}, env(nil), &bytes.Buffer{})
	if err != nil || c.ClaimRetention != 0 || c.FailedSecretRetention != 0 {
		t.Fatalf("off: %v", err)
	}
	for _, bad := range [][]string{{"--claim-retention=1h"}, {"--failed-secret-retention=5m"}, {"--idempotency-key-retention=x"}} {
		if _, err := Parse(bad, env(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// Secure by default: serve refuses to start without API keys and a data key
// unless the demo or an explicit opt-out says so; the demo without keys
// listens on loopback only.
func TestForServe(t *testing.T) {
	t.Parallel()
	hash := strings.Repeat("ab", 32)
	key := newKeyB64(t)
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantErr  string
		wantAddr string
	}{
		{name: "nothing set", wantErr: "CLAIMSVC_API_KEYS"},
		{name: "keys but no data key", env: map[string]string{"CLAIMSVC_API_KEYS": hash}, wantErr: "CLAIMSVC_DATA_KEY"},
		{name: "data key but no API keys", env: map[string]string{"CLAIMSVC_DATA_KEY": key}, wantErr: "CLAIMSVC_INSECURE_NO_API_KEYS"},
		{name: "keys and a data key", env: map[string]string{"CLAIMSVC_API_KEYS": hash, "CLAIMSVC_DATA_KEY": key}, wantAddr: ":8080"},
		{name: "explicit opt-outs", env: map[string]string{"CLAIMSVC_INSECURE_NO_API_KEYS": "true", "CLAIMSVC_INSECURE_NO_DATA_KEY": "true"}, wantAddr: ":8080"},
		{name: "demo", args: []string{"--demo"}, wantAddr: "127.0.0.1:8080"},
		{name: "demo on [::]", args: []string{"--demo", "--http-addr=[::]:9999"}, wantAddr: "127.0.0.1:9999"},
		{name: "demo on loopback", args: []string{"--demo", "--http-addr=127.0.0.1:1234"}, wantAddr: "127.0.0.1:1234"},
		{name: "demo on a public address", args: []string{"--demo", "--http-addr=192.0.2.1:8080"}, wantErr: "loopback"},
		{name: "demo with API keys", args: []string{"--demo"}, env: map[string]string{"CLAIMSVC_API_KEYS": hash}, wantAddr: ":8080"},
		{name: "a default duration no mqtt claim may ask for", env: map[string]string{"CLAIMSVC_API_KEYS": hash, "CLAIMSVC_DATA_KEY": key,
			"CLAIMSVC_DEFAULT_DURATION_MS": "172800000"}, wantErr: "CLAIMSVC_TB_CLAIM_CACHE_TTL"},
		{name: "attribute by default without ThingsBoard", env: map[string]string{"CLAIMSVC_API_KEYS": hash, "CLAIMSVC_DATA_KEY": key,
			"CLAIMSVC_DELIVERY": "attribute"}, wantErr: "CLAIMSVC_TB_URL"},
		{name: "attribute by default, in the demo", args: []string{"--demo", "--delivery=attribute", "--default-duration-ms=172800000"},
			wantAddr: "127.0.0.1:8080"},
	}
	for _, tc := range cases {
		c, err := Parse(tc.args, env(tc.env), &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%s: parse: %v", tc.name, err)
		}
		err = c.ForServe()
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: want an error naming %s, got %v", tc.name, tc.wantErr, err)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr == "" && c.HTTPAddr != tc.wantAddr:
			t.Errorf("%s: listens on %s, want %s", tc.name, c.HTTPAddr, tc.wantAddr)
		}
	}
}

// TestSecretVariableLineEndIsDropped: a secret copied from a file into its
// variable keeps the line end (a secretKeyRef, an env file); it is taken off
// as from a _FILE.
func TestSecretVariableLineEndIsDropped(t *testing.T) {
	t.Parallel()
	c, err := Parse(nil, env(map[string]string{"CLAIMSVC_DATABASE_URL": "postgres://u@h:5432/d\r\n",
		"CLAIMSVC_TB_URL": "https://tb.example.com", "CLAIMSVC_TB_USERNAME": "u", "CLAIMSVC_TB_PASSWORD": "pw\n"}), &bytes.Buffer{})
	if err != nil || c.DatabaseURL != "postgres://u@h:5432/d" || c.TB.Password != "pw" {
		t.Fatalf("%q %q %v", c.DatabaseURL, c.TB.Password, err)
	}
}
