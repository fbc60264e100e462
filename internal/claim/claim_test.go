package claim

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestHint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                     "…",
		"short":                "…",
		"ABCDEFGHIJK":          "…",
		"ABCDEFGHIJKL":         "ABCD…KL",
		"DHT11_DEMO_TOKEN":     "DHT1…EN",
		"abcdefghij0123456789": "abcd…89",
	} {
		if got := Hint(in); got != want {
			t.Errorf("Hint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		secret *Secret
		dur    *int64
		want   string
	}{
		{nil, nil, `{}`},
		{ptr(Secret("abc")), nil, `{"secretKey":"abc"}`},
		{nil, ptr(int64(60000)), `{"durationMs":60000}`},
		{ptr(Secret("")), ptr(int64(1)), `{"secretKey":"","durationMs":1}`},
		{ptr(Secret(`a"b\c<&>ü`)), ptr(int64(2592000000)), `{"secretKey":"a\"b\\c<&>ü","durationMs":2592000000}`},
	} {
		if got := string(Payload(tc.secret, tc.dur)); got != tc.want {
			t.Errorf("Payload = %s, want %s", got, tc.want)
		}
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	t.Parallel()
	tok, sec := Token("TOKEN_SHOULD_NOT_LEAK_123"), Secret("SECRET_SHOULD_NOT_LEAK")
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "token", tok, "secret", sec)
	s := buf.String() + fmt.Sprint(tok, sec) + fmt.Sprintf("%v %+v %#v %s", tok, sec, sec, sec)
	s += fmt.Sprintf("%v", Request{Token: tok, SecretKey: &sec})
	if strings.Contains(s, "LEAK") {
		t.Fatalf("secret material printed: %s", s)
	}
}

func TestValidator(t *testing.T) {
	t.Parallel()
	v := NewValidator(Rules{})
	long := strings.Repeat("a", 129)
	bad := []struct {
		name  string
		in    Input
		field string
	}{
		{"empty token", Input{}, "token"},
		{"token with slash", Input{Token: "a/b"}, "token"},
		{"token with space", Input{Token: "a b"}, "token"},
		{"token non-ascii", Input{Token: "tökén"}, "token"},
		{"token too long", Input{Token: long}, "token"},
		{"secret too long", Input{Token: "t", SecretKey: ptr(long)}, "secretKey"},
		{"secret control char", Input{Token: "t", SecretKey: ptr("a\nb")}, "secretKey"},
		{"secret invalid utf8", Input{Token: "t", SecretKey: ptr("a\xffb")}, "secretKey"},
		{"duration zero", Input{Token: "t", DurationMs: ptr(int64(0))}, "durationMs"},
		{"duration negative", Input{Token: "t", DurationMs: ptr(int64(-5))}, "durationMs"},
		{"duration over 365 days", Input{Token: "t", DurationMs: ptr(int64(MaxDurationMs + 1))}, "durationMs"},
		{"device-side duration over the cache TTL", Input{Token: "t", DurationMs: ptr(int64(86_400_001))}, "durationMs"},
		{"http duration over the cache TTL", Input{Token: "t", Delivery: "http", DurationMs: ptr(int64(86_400_001))}, "durationMs"},
		{"unknown delivery", Input{Token: "t", Delivery: "carrier-pigeon"}, "delivery"},
		{"attribute without a device name", Input{Token: "t", Delivery: "attribute"}, "deviceName"},
		{"empty device name", Input{Token: "t", DeviceName: ptr("")}, "deviceName"},
		{"device name too long", Input{Token: "t", DeviceName: ptr(strings.Repeat("d", 256))}, "deviceName"},
		{"device name with a control character", Input{Token: "t", DeviceName: ptr("a\tb")}, "deviceName"},
		{"device name with a bidi override", Input{Token: "t", DeviceName: ptr("Sensor \u202egpj.exe")}, "deviceName"},
		{"device name of spaces", Input{Token: "t", DeviceName: ptr("   ")}, "deviceName"},
		{"secret with a zero-width space", Input{Token: "t", SecretKey: ptr("ab\u200bcd")}, "secretKey"},
		{"idempotency key too long", Input{Token: "t", IdempotencyKey: long}, "Idempotency-Key"},
		{"idempotency key non-ascii", Input{Token: "t", IdempotencyKey: "ä"}, "Idempotency-Key"},
	}
	for _, tc := range bad {
		_, err := v.Request(tc.in)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalid || len(e.Fields) != 1 || e.Fields[0].Field != tc.field {
			t.Errorf("%s: got %#v, want one invalid field %q", tc.name, err, tc.field)
		}
	}
	r, err := v.Request(Input{Token: "T", SecretKey: ptr(strings.Repeat("ü", 128)), DurationMs: ptr(int64(MaxDurationMs)),
		Delivery: "attribute", DeviceName: ptr("Sensor ü-1")})
	if err != nil || r.DurationMs == nil || *r.DurationMs != MaxDurationMs || r.Delivery != DeliveryAttribute || r.DeviceName != "Sensor ü-1" {
		t.Fatalf("valid request refused: %v", err)
	}
	if r, err := v.Request(Input{Token: "T", DurationMs: ptr(int64(86_400_000))}); err != nil || r.Delivery != DeliveryMQTT {
		t.Fatalf("a device-side claim of exactly the cache TTL: %+v %v", r, err)
	}
	if r, _ := v.Request(Input{Token: "T", Delivery: "attribute", DeviceName: ptr("d")}); r.DurationMs == nil || *r.DurationMs != 86_400_000 {
		t.Fatalf("an attribute claim without a duration gets ThingsBoard's 24 h written out: %v", r.DurationMs)
	}
	if r, _ := NewValidator(Rules{DefaultDelivery: DeliveryHTTP}).Request(Input{Token: "T"}); r.Delivery != DeliveryHTTP {
		t.Fatalf("default delivery not applied: %q", r.Delivery)
	}
	// A delivery that lacks its settings is refused, naming them.
	noTB := NewValidator(Rules{MissingREST: "CLAIMSVC_TB_URL", MissingDeviceAPI: "CLAIMSVC_TB_URL"})
	for _, d := range []string{"attribute", "http"} {
		_, err := noTB.Request(Input{Token: "T", Delivery: d, DeviceName: ptr("d")})
		var e *Error
		if !errors.As(err, &e) || len(e.Fields) != 1 || e.Fields[0].Field != "delivery" || !strings.Contains(e.Fields[0].Message, "CLAIMSVC_TB_URL") {
			t.Fatalf("%s without ThingsBoard settings: %v", d, err)
		}
	}
	_, err = v.Request(Input{Token: "T", DurationMs: ptr(int64(86_400_001))})
	var tooLong *Error
	if !errors.As(err, &tooLong) || !strings.Contains(tooLong.Fields[0].Message, "attribute") {
		t.Fatalf("a device-side claim over the cache TTL must point to attribute: %v", err)
	}
	if r, _ := NewValidator(Rules{DefaultDurationMs: 5000}).Request(Input{Token: "T"}); r.DurationMs == nil || *r.DurationMs != 5000 {
		t.Fatalf("default duration not applied: %v", r.DurationMs)
	}
	if r, _ := v.Request(Input{Token: "T"}); r.DurationMs != nil {
		t.Fatal("no default configured, but a duration was set")
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	a := Request{Token: "T", SecretKey: ptr(Secret("s")), DurationMs: ptr(int64(5))}
	same := Request{Token: "T", SecretKey: ptr(Secret("s")), DurationMs: ptr(int64(5))}
	if !bytes.Equal(a.Fingerprint(), same.Fingerprint()) {
		t.Fatal("same request, different fingerprints")
	}
	for _, other := range []Request{
		{Token: "T2", SecretKey: ptr(Secret("s")), DurationMs: ptr(int64(5))},
		{Token: "T", SecretKey: ptr(Secret("s2")), DurationMs: ptr(int64(5))},
		{Token: "T", SecretKey: ptr(Secret("")), DurationMs: ptr(int64(5))},
		{Token: "T", DurationMs: ptr(int64(5))},
		{Token: "T", SecretKey: ptr(Secret("s"))},
	} {
		if bytes.Equal(a.Fingerprint(), other.Fingerprint()) {
			t.Errorf("different request %v, same fingerprint", other)
		}
	}
}

func TestExpiryAfter(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := ExpiryAfter(at, nil); !got.Equal(at.Add(24 * time.Hour)) {
		t.Fatalf("default expiry %v", got)
	}
	if got := ExpiryAfter(at, ptr(int64(60000))); !got.Equal(at.Add(time.Minute)) {
		t.Fatalf("expiry %v", got)
	}
}

// A request with the default delivery and no device name keeps the
// fingerprint it had before deliveries existed (replays across the upgrade);
// another delivery or a device name makes it another request.
func TestFingerprintOfDeliveries(t *testing.T) {
	t.Parallel()
	plain := Request{Token: "T", SecretKey: ptr(Secret("s"))}
	mqtt := plain
	mqtt.Delivery = DeliveryMQTT
	if !bytes.Equal(plain.Fingerprint(), mqtt.Fingerprint()) {
		t.Fatal("an explicit mqtt delivery changed the fingerprint")
	}
	for _, other := range []Request{
		{Token: "T", SecretKey: ptr(Secret("s")), Delivery: DeliveryHTTP},
		{Token: "T", SecretKey: ptr(Secret("s")), Delivery: DeliveryAttribute, DeviceName: "d"},
		{Token: "T", SecretKey: ptr(Secret("s")), DeviceName: "d"},
	} {
		if bytes.Equal(plain.Fingerprint(), other.Fingerprint()) {
			t.Errorf("%+v has the fingerprint of a plain mqtt claim", other)
		}
	}
}
