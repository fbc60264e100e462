package http

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/claimsvc/claimsvc/api"
)

// problemRow is a table row "| `urn:claimsvc:problem:…` | status | …".
var problemRow = regexp.MustCompile("(?m)^\\s*\\| `(urn:claimsvc:problem:[a-z-]+)` \\| (\\d{3}) \\|")

func problemTable(t *testing.T, where, text string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range problemRow.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(m[2])
		if _, dup := out[m[1]]; dup {
			t.Errorf("%s lists %s twice", where, m[1])
		}
		out[m[1]] = n
	}
	return out
}

// TestEveryProblemTypeIsDocumented: the problem types in the spec (on
// Problem.type) and in docs/design.md §2.7 are exactly the ones the error
// table (statuses) answers, each with its status.
func TestEveryProblemTypeIsDocumented(t *testing.T) {
	t.Parallel()
	want := map[string]int{}
	for code, s := range statuses {
		want[problemType(code)] = s.status
	}
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	design, err := os.ReadFile("../../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{
		"api/openapi.yaml (Problem.type)": doc.Components.Schemas["Problem"].Value.Properties["type"].Value.Description,
		"docs/design.md":                  string(design),
	} {
		got := problemTable(t, where, text)
		for typ, status := range want {
			if got[typ] != status {
				t.Errorf("%s: %s is answered with %d, documented with %d", where, typ, status, got[typ])
			}
		}
		for typ := range got {
			if _, ok := want[typ]; !ok {
				t.Errorf("%s documents %s, which claimsvc never answers", where, typ)
			}
		}
	}
}
