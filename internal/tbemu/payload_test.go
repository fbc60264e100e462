package tbemu

import (
	"strings"
	"testing"
)

// TestParseClaimPayload walks the table of docs/thingsboard.md §1.1 row by row, plus Gson corner cases.
func TestParseClaimPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		payload string
		secret  string
		dur     int64
		kind    errKind
		msg     string // expected error text prefix
	}{
		// zero-length body → "", default
		{payload: "", secret: "", dur: 0},
		{payload: "{}", secret: "", dur: 0},
		{payload: `{"secretKey":"k"}`, secret: "k"},
		{payload: `{"durationMs":60000}`, dur: 60000},
		{payload: `{"durationMs":0}`, dur: 0},
		{payload: `{"durationMs":-5}`, dur: -5}, // <= 0: the system default is used
		{payload: `{"durationMs":"60000"}`, dur: 60000},
		{payload: `{"durationMs":1.9}`, dur: 1},
		{payload: `{"durationMs":1e3}`, dur: 1000},
		{payload: `{"durationMs":-1.9}`, dur: -1},
		{payload: `{"secretKey":123}`, secret: "123"},
		{payload: `{"secretKey":1.50}`, secret: "1.50"},
		{payload: `{"secretKey":true}`, secret: "true"},
		{payload: `{"secretKey":"k","x":1}`, secret: "k"},
		{payload: `{secretKey:'k'}`, secret: "k"},
		{payload: `{secretKey=k; durationMs=>5}`, secret: "k", dur: 5},
		{payload: "// comment\n{\"secretKey\":\"k\" # hash\n}", secret: "k"},
		{payload: `{"secretKey":"a","secretKey":"b"}`, secret: "b"},
		{payload: `{"secretKey":["k"]}`, secret: "k"},
		{payload: `{"durationMs":"+7"}`, dur: 7},
		{payload: `{"durationMs":01}`, dur: 1}, // "01" is an unquoted string to Gson; Long.parseLong accepts it
		{payload: ")]}'\n{\"secretKey\":\"k\"}", secret: "k"},
		{payload: `{"secretKey":"\u00e9\n"}`, secret: "é\n"},
		// syntax error path
		{payload: `[]`, kind: kindSyntax, msg: "Can't parse value: []"},
		{payload: `"str"`, kind: kindSyntax, msg: `Can't parse value: "str"`},
		{payload: `'str'`, kind: kindSyntax, msg: `Can't parse value: "str"`},
		{payload: `123`, kind: kindSyntax, msg: "Can't parse value: 123"},
		{payload: `null`, kind: kindSyntax, msg: "Can't parse value: null"},
		{payload: "   ", kind: kindSyntax, msg: "Can't parse value: null"},
		{payload: `{"a":1} trailing`, kind: kindSyntax, msg: "Did not consume the entire document."},
		{payload: `{"a":1}{}`, kind: kindSyntax, msg: "Did not consume the entire document."},
		{payload: `{"a":`, kind: kindSyntax, msg: "java.io.EOFException"},
		{payload: `{"a" 1}`, kind: kindSyntax, msg: "com.google.gson.stream.MalformedJsonException: Expected ':'"},
		{payload: `{"a":1,}`, kind: kindSyntax, msg: "com.google.gson.stream.MalformedJsonException: Expected name"},
		{payload: `{"a":"\x"}`, kind: kindSyntax, msg: "com.google.gson.stream.MalformedJsonException: Invalid escape"},
		{payload: "/* never closed", kind: kindSyntax, msg: "com.google.gson.stream.MalformedJsonException: Unterminated comment"},
		{payload: strings.Repeat("[", 300), kind: kindSyntax, msg: "com.google.gson.stream.MalformedJsonException: Nesting limit"},
		// runtime error path
		{payload: `{"durationMs":"abc"}`, kind: kindRuntime, msg: "java.lang.NumberFormatException"},
		{payload: `{"durationMs":true}`, kind: kindRuntime, msg: "java.lang.NumberFormatException"},
		{payload: `{"durationMs":1e20000}`, kind: kindRuntime, msg: "java.lang.NumberFormatException"},
		{payload: `{"secretKey":null}`, kind: kindRuntime, msg: "java.lang.UnsupportedOperationException: JsonNull"},
		{payload: `{"durationMs":null}`, kind: kindRuntime, msg: "java.lang.UnsupportedOperationException: JsonNull"},
		{payload: `{"secretKey":{}}`, kind: kindRuntime, msg: "java.lang.UnsupportedOperationException: JsonObject"},
		// Gson IllegalStateException: caught like a syntax error by the MQTT adaptor
		{payload: `{"secretKey":[]}`, kind: kindIllegalState, msg: "java.lang.IllegalStateException"},
		{payload: `{"durationMs":[1,2]}`, kind: kindIllegalState, msg: "java.lang.IllegalStateException"},
	}
	for _, tc := range tests {
		t.Run(tc.payload, func(t *testing.T) {
			req, err := parseClaimPayload([]byte(tc.payload))
			if tc.kind != 0 {
				if err == nil {
					t.Fatalf("got %+v, want error kind %d", req, tc.kind)
				}
				if k := errorKind(err); k != tc.kind {
					t.Fatalf("error kind = %d (%v), want %d", k, err, tc.kind)
				}
				if !strings.HasPrefix(err.Error(), tc.msg) {
					t.Fatalf("error = %q, want prefix %q", err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if req.SecretKey != tc.secret || req.DurationMs != tc.dur {
				t.Fatalf("got (%q, %d), want (%q, %d)", req.SecretKey, req.DurationMs, tc.secret, tc.dur)
			}
		})
	}
}

func TestLazilyParsedLongWraps(t *testing.T) {
	t.Parallel()
	// BigDecimal("1e19").longValue() keeps the low 64 bits: 10^19 - 2^64.
	got, err := lazilyParsedLong("1e19")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(-8446744073709551616); got != want {
		t.Fatalf("got %d, want %d", got, want)
	}
}

func TestGsonString(t *testing.T) {
	t.Parallel()
	v, err := parseGsonLenient(`[1.50, 'a"b', {x:TRUE, y:null}, [,], [1,]]`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.String(), `[1.50,"a\"b",{"x":true,"y":null},[null,null],[1,null]]`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
