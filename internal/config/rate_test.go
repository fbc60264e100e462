package config

import (
	"testing"
	"time"
)

func TestRateLimitSettings(t *testing.T) {
	t.Parallel()
	c, err := Parse(nil, func(string) string { return "" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimitIP != (Rate{1000, time.Second}) || c.RateLimitToken != (Rate{20, time.Minute}) || c.TrustedProxies != nil ||
		c.BrokerProbe != time.Second || c.StatsInterval != 5*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
	env := map[string]string{"CLAIMSVC_RATE_LIMIT_IP": "off", "CLAIMSVC_RATE_LIMIT_TOKEN": "5/h", "CLAIMSVC_TRUSTED_PROXIES": "10.0.0.0/8, ::1/128"}
	c, err = Parse(nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimitIP != (Rate{}) || c.RateLimitToken != (Rate{5, time.Hour}) || len(c.TrustedProxies) != 2 {
		t.Fatalf("%+v", c)
	}
	for _, bad := range []string{"10", "0/1s", "-1/1s", "5/0s", "5/10ms", "x/1s", "5/fortnight"} {
		if _, err := Parse([]string{"--rate-limit-ip", bad}, func(string) string { return "" }, nil); err == nil {
			t.Errorf("rate %q accepted", bad)
		}
	}
	if _, err := Parse([]string{"--trusted-proxies", "10.0.0.1"}, func(string) string { return "" }, nil); err == nil {
		t.Error("an address without a prefix length accepted as a CIDR")
	}
}
