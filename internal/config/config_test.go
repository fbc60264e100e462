package config

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8080" || c.MQTTURL != "tcp://localhost:1883" || c.Workers != 32 || c.TBClaimHold != 24*time.Hour ||
		c.MaxPendingAge != 168*time.Hour || c.LogLevel != slog.LevelInfo || c.LogFormat != "json" || !c.Migrate ||
		c.RequireAPIKey || c.DefaultDurationMs != 0 || c.DatabaseURL == "" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestFlagBeatsEnvBeatsDefault(t *testing.T) {
	t.Parallel()
	e := env(map[string]string{"CLAIMSVC_WORKERS": "8", "CLAIMSVC_HTTP_ADDR": ":9", "CLAIMSVC_DEMO": "true",
		"CLAIMSVC_API_KEYS": strings.Repeat("ab", 32) + "," + strings.Repeat("cd", 32), "CLAIMSVC_DEFAULT_DURATION_MS": "60000"})
	c, err := Parse([]string{"--workers", "4", "--log-format=text"}, e, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Workers != 4 || c.HTTPAddr != ":9" || !c.Demo || c.LogFormat != "text" || len(c.APIKeyHashes) != 2 || c.DefaultDurationMs != 60000 {
		t.Fatalf("%+v", c)
	}
}

func TestErrorsNameTheSettingAndHideSecrets(t *testing.T) {
	t.Parallel()
	_, err := Parse(nil, env(map[string]string{"CLAIMSVC_WORKERS": "many"}), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "CLAIMSVC_WORKERS") {
		t.Fatalf("got %v", err)
	}
	_, err = Parse([]string{"--api-keys", "plainkey"}, env(nil), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--api-keys") {
		t.Fatalf("got %v", err)
	}
	for _, bad := range [][]string{{"--require-api-key"}, {"--log-format", "xml"}, {"--tb-claim-hold", "-1s"}, {"--default-duration-ms", "0"}, {"extra"}} {
		if _, err := Parse(bad, env(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestHelpListsEveryFlagAndVariable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := Parse([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v", err)
	}
	for _, s := range settings {
		if s.secret { // listed by its variables only: the flag is refused
			if !strings.Contains(out.String(), s.env+"_FILE") || strings.Contains(out.String(), "--"+s.flag+" ") {
				t.Errorf("--help: secret %s must be listed as %s / %s_FILE, without its flag", s.flag, s.env, s.env)
			}
			continue
		}
		if !strings.Contains(out.String(), "--"+s.flag) || !strings.Contains(out.String(), s.env) {
			t.Errorf("--help lacks %s / %s", s.flag, s.env)
		}
	}
}

// TestREADMEDocumentsEverySetting keeps the README's table from drifting.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range EnvVars() {
		if !strings.Contains(string(b), "`"+v+"`") {
			t.Errorf("README.md does not document %s", v)
		}
	}
}

// TestAPIKeyDigestsAsSha256sumPrintsThem: sha256sum's line ("<hex>  -") is
// taken as the digest; anything else that is not 64 hex characters is not.
func TestAPIKeyDigestsAsSha256sumPrintsThem(t *testing.T) {
	t.Parallel()
	hexd := strings.Repeat("ab", 32)
	for v, want := range map[string]int{hexd + "  -": 1, hexd + "  -," + strings.Repeat("cd", 32): 2, hexd + " x": -1, "secret-key": -1} {
		c, err := Parse(nil, env(map[string]string{"CLAIMSVC_API_KEYS": v}), &bytes.Buffer{})
		switch {
		case want < 0 && err == nil:
			t.Errorf("%q accepted", v)
		case want >= 0 && (err != nil || len(c.APIKeyHashes) != want):
			t.Errorf("%q: %v, %d digests", v, err, len(c.APIKeyHashes))
		}
	}
}

// TestRefusedURLDoesNotPrintItsCredentials: the error that refuses a URL with
// credentials names the setting, not the password.
func TestRefusedURLDoesNotPrintItsCredentials(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"https://tenant%40example.com:S3cretPw@tb.example.com", "https://tenant@x:S3cretPw@tb.example.com/%zz"} {
		_, err := Parse(nil, env(map[string]string{"CLAIMSVC_TB_URL": v, "CLAIMSVC_TB_API_KEY": "k"}), &bytes.Buffer{})
		if err == nil {
			t.Fatalf("%s accepted", v)
		}
		if strings.Contains(err.Error(), "S3cretPw") || strings.Contains(err.Error(), "tenant") || !strings.Contains(err.Error(), "CLAIMSVC_TB_URL") {
			t.Errorf("%v", err)
		}
	}
}
