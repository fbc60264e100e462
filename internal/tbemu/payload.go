package tbemu

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// errKind sorts payload failures into the paths of docs/thingsboard.md §1.1 and §1.2.
type errKind int

const (
	// kindSyntax is JsonSyntaxException: malformed text, or a root that is not an object. MQTT 3
	// closes the connection, MQTT 5 answers PUBACK 0x99, HTTP answers 500 with the message.
	kindSyntax errKind = iota + 1
	// kindIllegalState is Gson's IllegalStateException (an array of size != 1 read as a scalar).
	// JsonMqttAdaptor catches it like a syntax error; the HTTP API answers 500 with an empty body.
	kindIllegalState
	// kindRuntime is NumberFormatException or UnsupportedOperationException: MQTT closes the
	// connection (MQTT 5 sends DISCONNECT 0x8B first), HTTP answers 500 with an empty body.
	kindRuntime
)

// payloadError is a claim payload that ThingsBoard would not accept.
type payloadError struct {
	kind errKind
	msg  string
}

func (e *payloadError) Error() string { return e.msg }

// errorKind returns the kind of a payload error, or 0.
func errorKind(err error) errKind {
	var pe *payloadError
	if errors.As(err, &pe) {
		return pe.kind
	}
	return 0
}

// claimRequest is the decoded device-side claim: ThingsBoard's ClaimDevice message. DurationMs
// <= 0 means "use the system default" (docs/thingsboard.md §1.1, CDSI validateDurationMs).
type claimRequest struct {
	SecretKey  string
	DurationMs int64
}

// parseClaimPayload converts a device claim payload as JsonConverter.convertToClaimDeviceProto does
// (docs/thingsboard.md §1.1): an empty payload is the default request; otherwise it is parsed leniently and
// must be an object, whose "secretKey" is read with getAsString and "durationMs" with getAsLong.
func parseClaimPayload(payload []byte) (claimRequest, error) {
	if len(payload) == 0 {
		return claimRequest{}, nil
	}
	root, err := parseGsonLenient(string(payload))
	if err != nil {
		return claimRequest{}, &payloadError{kind: kindSyntax, msg: err.Error()}
	}
	return claimFromElement(root)
}

// claimFromElement converts one parsed element; it is shared with the gateway topic, which hands
// each per-device object to the same converter (docs/thingsboard.md §1.5).
func claimFromElement(v *jsonValue) (claimRequest, error) {
	if v.kind != jsonObject {
		return claimRequest{}, &payloadError{kind: kindSyntax, msg: "Can't parse value: " + v.String()}
	}
	var req claimRequest
	if sk := v.get("secretKey"); sk != nil {
		s, err := gsonAsString(sk)
		if err != nil {
			return claimRequest{}, err
		}
		req.SecretKey = s
	}
	if d := v.get("durationMs"); d != nil {
		n, err := gsonAsLong(d)
		if err != nil {
			return claimRequest{}, err
		}
		req.DurationMs = n
	}
	return req, nil
}

// gsonAsString is JsonElement.getAsString: primitives as text (numbers as written), a one-element
// array as its element, anything else an exception.
func gsonAsString(v *jsonValue) (string, error) {
	switch v.kind {
	case jsonString, jsonNumber, jsonBool:
		return v.text, nil
	case jsonArray:
		if len(v.items) == 1 {
			return gsonAsString(v.items[0])
		}
		return "", &payloadError{kind: kindIllegalState,
			msg: fmt.Sprintf("java.lang.IllegalStateException: Array must have size 1, but has size %d", len(v.items))}
	case jsonNull:
		return "", &payloadError{kind: kindRuntime, msg: "java.lang.UnsupportedOperationException: JsonNull"}
	default:
		return "", &payloadError{kind: kindRuntime, msg: "java.lang.UnsupportedOperationException: JsonObject"}
	}
}

// gsonAsLong is JsonElement.getAsLong: a number goes through LazilyParsedNumber.longValue (Long.parseLong,
// else BigDecimal.longValue, which truncates), a string or boolean through Long.parseLong.
func gsonAsLong(v *jsonValue) (int64, error) {
	switch v.kind {
	case jsonNumber:
		return lazilyParsedLong(v.text)
	case jsonString, jsonBool:
		return javaParseLong(v.text)
	case jsonArray:
		if len(v.items) == 1 {
			return gsonAsLong(v.items[0])
		}
		return 0, &payloadError{kind: kindIllegalState,
			msg: fmt.Sprintf("java.lang.IllegalStateException: Array must have size 1, but has size %d", len(v.items))}
	case jsonNull:
		return 0, &payloadError{kind: kindRuntime, msg: "java.lang.UnsupportedOperationException: JsonNull"}
	default:
		return 0, &payloadError{kind: kindRuntime, msg: "java.lang.UnsupportedOperationException: JsonObject"}
	}
}

// javaParseLong is Long.parseLong(s): optional sign, decimal digits, in range.
func javaParseLong(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, &payloadError{kind: kindRuntime, msg: fmt.Sprintf("java.lang.NumberFormatException: For input string: %q", s)}
	}
	return n, nil
}

// gsonMaxScale is Gson's NumberLimits limit on a BigDecimal's scale.
const gsonMaxScale = 10000

// lazilyParsedLong is LazilyParsedNumber.longValue: Long.parseLong, else new BigDecimal(text).longValue(),
// which drops the fraction and keeps the low 64 bits of the integer part.
func lazilyParsedLong(text string) (int64, error) {
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return n, nil
	}
	mant, exp := text, 0
	if i := strings.IndexAny(text, "eE"); i >= 0 {
		e, err := strconv.Atoi(text[i+1:])
		if err != nil {
			return 0, &payloadError{kind: kindRuntime, msg: "java.lang.NumberFormatException: " + text}
		}
		mant, exp = text[:i], e
	}
	scale := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		scale = len(mant) - i - 1
	}
	if s := scale - exp; s >= gsonMaxScale || -s >= gsonMaxScale {
		return 0, &payloadError{kind: kindRuntime, msg: "java.lang.NumberFormatException: Number has unsupported scale: " + text}
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return 0, &payloadError{kind: kindRuntime, msg: "java.lang.NumberFormatException: " + text}
	}
	q := new(big.Int).Quo(r.Num(), r.Denom()) // truncates toward zero
	// BigInteger.longValue: the low-order 64 bits, two's complement.
	mod := new(big.Int).Lsh(big.NewInt(1), 64)
	q.Mod(q, mod)
	return int64(q.Uint64()), nil
}
