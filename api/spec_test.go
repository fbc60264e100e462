package api_test

// The rules an integrator relies on, checked on api/openapi.yaml itself
// (docs/design.md §2.9): what Redocly's recommended rules say and more, so
// that they hold on a machine without Node.js too.

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/claimsvc/claimsvc/api"
)

func load(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return doc
}

// operation is one operation with its method and path, for messages.
type operation struct {
	name string
	op   *openapi3.Operation
}

func operations(doc *openapi3.T) []operation {
	var ops []operation
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			ops = append(ops, operation{method + " " + path, op})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.name, b.name) })
	return ops
}

// health operations are never rate-limited and need no key.
func health(op *openapi3.Operation) bool { return slices.Contains(op.Tags, "health") }

func TestEveryOperationIsNamedAndDescribed(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, o := range operations(load(t)) {
		if o.op.OperationID == "" || o.op.Summary == "" || len(o.op.Tags) == 0 {
			t.Errorf("%s: needs an operationId, a summary and a tag", o.name)
		}
		if seen[o.op.OperationID] {
			t.Errorf("%s: operationId %s twice", o.name, o.op.OperationID)
		}
		seen[o.op.OperationID] = true
	}
}

// TestEveryAnswerIsDocumented: every response names X-Request-Id; every
// response of a rate-limited route names the X-Ratelimit-* headers; 429 and
// 503 name Retry-After; every 4xx and 5xx is a Problem with an example.
func TestEveryAnswerIsDocumented(t *testing.T) {
	t.Parallel()
	for _, o := range operations(load(t)) {
		for code, ref := range o.op.Responses.Map() {
			res := ref.Value
			where := o.name + " " + code
			want := []string{"X-Request-Id"}
			if !health(o.op) {
				want = append(want, "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset")
			}
			if code == "429" || code == "503" {
				want = append(want, "Retry-After")
			}
			if code == "401" {
				want = append(want, "Www-Authenticate")
			}
			for _, h := range want {
				if res.Headers[h] == nil {
					t.Errorf("%s: does not declare %s", where, h)
				}
			}
			status, _ := strconv.Atoi(code)
			if status < 400 {
				continue
			}
			mt := res.Content.Get("application/problem+json")
			if len(res.Content) != 1 || mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Problem" {
				t.Errorf("%s: an error answer must be application/problem+json with the Problem schema", where)
				continue
			}
			if len(mt.Examples) == 0 {
				t.Errorf("%s: no example", where)
			}
			for name, ex := range mt.Examples {
				if got := ex.Value.Value.(map[string]any)["status"]; got != float64(status) {
					t.Errorf("%s: example %s has status %v", where, name, got)
				}
			}
		}
	}
}

// TestExamplesMatchTheirSchemas: every request body has an example, and every
// example (request or response) validates against its schema; NDJSON line by
// line.
func TestExamplesMatchTheirSchemas(t *testing.T) {
	t.Parallel()
	doc := load(t)
	item := doc.Components.Schemas["BatchClaim"].Value
	check := func(where string, content openapi3.Content, required bool) {
		t.Helper()
		for ct, mt := range content {
			if required && len(mt.Examples) == 0 && mt.Example == nil {
				t.Errorf("%s %s: no example", where, ct)
			}
			for name, ex := range mt.Examples {
				v := ex.Value.Value
				if ct == "application/x-ndjson" {
					sc := bufio.NewScanner(strings.NewReader(v.(string)))
					for sc.Scan() {
						var line any
						if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
							t.Errorf("%s %s example %s: %v", where, ct, name, err)
						} else if err := item.VisitJSON(line); err != nil {
							t.Errorf("%s %s example %s: a line is not a BatchClaim: %v", where, ct, name, err)
						}
					}
					continue
				}
				if err := mt.Schema.Value.VisitJSON(v, openapi3.MultiErrors()); err != nil {
					t.Errorf("%s %s example %s does not match its schema: %v", where, ct, name, err)
				}
			}
		}
	}
	for _, o := range operations(doc) {
		if o.op.RequestBody != nil {
			check(o.name+" request", o.op.RequestBody.Value.Content, true)
		}
		for code, ref := range o.op.Responses.Map() {
			check(o.name+" "+code, ref.Value.Content, false)
		}
	}
}

// TestHeaderNamesAreCanonical: header names are written as Go sends them
// (ogen refuses any other spelling; HTTP names are case-insensitive anyway).
func TestHeaderNamesAreCanonical(t *testing.T) {
	t.Parallel()
	doc := load(t)
	canonical := func(where, name string) {
		if http.CanonicalHeaderKey(name) != name {
			t.Errorf("%s: header %s is written %s on the wire", where, name, http.CanonicalHeaderKey(name))
		}
	}
	for name, p := range doc.Components.Parameters {
		if p.Value.In == openapi3.ParameterInHeader {
			canonical("parameter "+name, p.Value.Name)
		}
	}
	for name, s := range doc.Components.SecuritySchemes {
		if s.Value.In == "header" {
			canonical("security scheme "+name, s.Value.Name)
		}
	}
	for _, o := range operations(doc) {
		for _, p := range o.op.Parameters {
			if p.Value.In == openapi3.ParameterInHeader {
				canonical(o.name, p.Value.Name)
			}
		}
		for code, ref := range o.op.Responses.Map() {
			for h := range ref.Value.Headers {
				canonical(o.name+" "+code, h)
			}
		}
	}
}

// TestNoReferenceIntoAnotherSchema: a shared field has its own named schema;
// a $ref into another schema's properties breaks oapi-codegen ("unexpected
// reference depth").
func TestNoReferenceIntoAnotherSchema(t *testing.T) {
	t.Parallel()
	for _, m := range regexp.MustCompile(`\$ref: "(#/components/schemas/[^"]*/[^"]*)"`).FindAllStringSubmatch(string(api.Spec), -1) {
		t.Errorf("%s: refer to a named schema instead", m[1])
	}
}
