package claim

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
)

// Input is a claim request as it arrives, before validation. The HTTP layer
// fills it from the path or X-Device-Token, the JSON body and the headers.
type Input struct {
	Token          string  `json:"token" validate:"required,max=128,devicetoken"`
	SecretKey      *string `json:"secretKey" validate:"omitnil,max=128,nocontrol"`
	DurationMs     *int64  `json:"durationMs" validate:"omitnil,min=1,max=31536000000"`
	Delivery       string  `json:"delivery" validate:"omitempty,oneof=mqtt http attribute"`
	DeviceName     *string `json:"deviceName" validate:"omitnil,min=1,max=255,nocontrol"`
	IdempotencyKey string  `json:"Idempotency-Key" validate:"omitempty,max=128,printascii"`
	Force          bool    `json:"-"`
}

// Rules are the settings the field rules depend on.
type Rules struct {
	// DefaultDurationMs (0: none) is applied to a request without
	// durationMs (CLAIMSVC_DEFAULT_DURATION_MS). Without it, a device-side
	// claim leaves durationMs out (ThingsBoard applies its 24 h) and an
	// attribute claim gets ThingsBoard's 24 h written out.
	DefaultDurationMs int64
	// DefaultDelivery is the delivery of a request that names none
	// (CLAIMSVC_DELIVERY); empty means mqtt.
	DefaultDelivery Delivery
	// CacheTTL is how long ThingsBoard keeps a device-side claim in its claim
	// cache (CLAIMSVC_TB_CLAIM_CACHE_TTL, 24 h): device-side claims may not
	// ask for more. Zero means 24 h.
	CacheTTL time.Duration
	// MissingREST, when not empty, says which settings the attribute
	// delivery lacks (ThingsBoard's REST URL and credentials).
	MissingREST string
	// MissingDeviceAPI, when not empty, says which setting the http
	// delivery lacks (ThingsBoard's URL).
	MissingDeviceAPI string
}

// Validator checks inputs against docs/design.md §2's field rules. It is safe for
// concurrent use; build one with NewValidator and pass it where needed.
type Validator struct {
	v     *validator.Validate
	rules Rules
}

// NewValidator returns a Validator that applies rules.
func NewValidator(rules Rules) *Validator {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	must(v.RegisterValidation("devicetoken", func(fl validator.FieldLevel) bool { return ValidToken(fl.Field().String()) }))
	must(v.RegisterValidation("nocontrol", func(fl validator.FieldLevel) bool { return printable(fl.Field().String()) }))
	if rules.DefaultDelivery == "" {
		rules.DefaultDelivery = DeliveryMQTT
	}
	if rules.CacheTTL <= 0 {
		rules.CacheTTL = ThingsBoardDefaultDuration
	}
	return &Validator{v: v, rules: rules}
}

func must(err error) {
	if err != nil {
		panic(err) // only on a programming error in the tags above
	}
}

// ValidToken: 1–128 characters of printable ASCII without spaces or "/".
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '/' {
			return false
		}
	}
	return true
}

// printable: valid UTF-8, no control characters and no invisible format
// characters (bidi overrides, zero-width marks: Unicode's Cf), and not only
// white space. A customer types the secret and the name from a label: what
// cannot be seen cannot be typed, and a bidi override makes a label lie.
func printable(s string) bool {
	if !utf8.ValidString(s) || (s != "" && strings.TrimSpace(s) == "") {
		return false
	}
	for _, r := range s {
		// ZWNJ and ZWJ (U+200C, U+200D) shape Persian and Indic words and
		// emoji sequences: kept.
		if unicode.IsControl(r) || (unicode.Is(unicode.Cf, r) && r != '\u200c' && r != '\u200d') {
			return false
		}
	}
	return true
}

// Request validates in and returns the request to store, or an *Error with
// CodeInvalid listing every field that broke a rule.
func (v *Validator) Request(in Input) (Request, error) {
	if err := v.v.Struct(in); err != nil {
		var ve validator.ValidationErrors
		if !errors.As(err, &ve) {
			return Request{}, &Error{Code: CodeInternal, Message: "validation failed", Err: err}
		}
		fields := make([]FieldError, 0, len(ve))
		for _, fe := range ve {
			fields = append(fields, FieldError{Field: fe.Field(), Message: message(fe)})
		}
		return Request{}, invalid(fields...)
	}
	r := Request{Token: Token(in.Token), DurationMs: in.DurationMs, Delivery: Delivery(in.Delivery),
		IdempotencyKey: in.IdempotencyKey, Force: in.Force}
	if in.SecretKey != nil {
		s := Secret(*in.SecretKey)
		r.SecretKey = &s
	}
	if in.DeviceName != nil {
		r.DeviceName = *in.DeviceName
	}
	if r.Delivery == "" {
		r.Delivery = v.rules.DefaultDelivery
	}
	if r.DurationMs == nil && v.rules.DefaultDurationMs > 0 {
		d := v.rules.DefaultDurationMs
		r.DurationMs = &d
	}
	if err := v.deliveryRules(&r, in.Delivery == ""); err != nil {
		return Request{}, err
	}
	return r, nil
}

// deliveryRules checks what depends on the request's delivery
// (docs/design.md §9). defaulted: the delivery came from CLAIMSVC_DELIVERY, not the request.
func (v *Validator) deliveryRules(r *Request, defaulted bool) error {
	which := string(r.Delivery)
	if defaulted {
		which += " (the default, CLAIMSVC_DELIVERY)"
	}
	switch r.Delivery {
	case DeliveryAttribute:
		switch {
		case v.rules.MissingREST != "":
			return invalid(FieldError{Field: "delivery", Message: which + " needs ThingsBoard's REST API, which this service is not configured for: set " + v.rules.MissingREST})
		case r.DeviceName == "":
			return invalid(FieldError{Field: "deviceName", Message: "is required for delivery attribute (the claim is written to the device found by this name)"})
		}
		if r.DurationMs == nil { // the attribute needs an expirationTime: ThingsBoard's default
			d := ThingsBoardDefaultDuration.Milliseconds()
			r.DurationMs = &d
		}
	case DeliveryHTTP:
		if v.rules.MissingDeviceAPI != "" {
			return invalid(FieldError{Field: "delivery", Message: which + " needs ThingsBoard's HTTP device API, which this service is not configured for: set " + v.rules.MissingDeviceAPI})
		}
	}
	if limit := v.rules.CacheTTL.Milliseconds(); r.Delivery.DeviceSide() && r.DurationMs != nil && *r.DurationMs > limit {
		return invalid(FieldError{Field: "durationMs", Message: fmt.Sprintf(
			"must be at most %d for delivery %s: ThingsBoard keeps a device-side claim in its claim cache for %s "+
				"(CLAIMSVC_TB_CLAIM_CACHE_TTL); use delivery attribute for claims of up to 365 days",
			limit, which, v.rules.CacheTTL)})
	}
	return nil
}

func invalid(fields ...FieldError) *Error {
	return &Error{Code: CodeInvalid, Message: "the request breaks the field rules", Fields: fields}
}

// message says what a rule wants without echoing the value (it may be secret).
func message(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "is required"
	case "max":
		if fe.Kind() == reflect.String {
			return "must be at most " + fe.Param() + " characters"
		}
		return "must be at most " + fe.Param()
	case "min":
		return "must be at least " + fe.Param()
	case "devicetoken":
		return "must be 1-128 printable ASCII characters without spaces or '/'"
	case "nocontrol":
		return "must be valid UTF-8, not only spaces, without control or invisible formatting characters"
	case "printascii":
		return "must be printable ASCII"
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(fe.Param(), " ", ", ")
	}
	return "is invalid (" + fe.Tag() + ")"
}
