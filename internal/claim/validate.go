package claim

import (
	"errors"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
)

// Input is a claim request as it arrives, before validation. The HTTP layer
// fills it from the path or X-Device-Token, the JSON body and the headers.
type Input struct {
	Token          string  `json:"token" validate:"required,max=128,devicetoken"`
	SecretKey      *string `json:"secretKey" validate:"omitnil,max=128,nocontrol"`
	DurationMs     *int64  `json:"durationMs" validate:"omitnil,min=1,max=2592000000"`
	IdempotencyKey string  `json:"Idempotency-Key" validate:"omitempty,max=128,printascii"`
	Force          bool    `json:"-"`
}

// Validator checks inputs against docs/design.md §2's field rules. It is safe for
// concurrent use; build one with NewValidator and pass it where needed.
type Validator struct {
	v               *validator.Validate
	defaultDuration *int64
}

// NewValidator returns a Validator. defaultDurationMs (0 = none) is applied
// when a request has no durationMs (CLAIMSVC_DEFAULT_DURATION_MS).
func NewValidator(defaultDurationMs int64) *Validator {
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
	val := &Validator{v: v}
	if defaultDurationMs > 0 {
		val.defaultDuration = &defaultDurationMs
	}
	return val
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

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
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
		return Request{}, &Error{Code: CodeInvalid, Message: "the request breaks the field rules", Fields: fields}
	}
	r := Request{Token: Token(in.Token), DurationMs: in.DurationMs, IdempotencyKey: in.IdempotencyKey, Force: in.Force}
	if in.SecretKey != nil {
		s := Secret(*in.SecretKey)
		r.SecretKey = &s
	}
	if r.DurationMs == nil {
		r.DurationMs = v.defaultDuration
	}
	return r, nil
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
		return "must be valid UTF-8 without control characters"
	case "printascii":
		return "must be printable ASCII"
	}
	return "is invalid (" + fe.Tag() + ")"
}
