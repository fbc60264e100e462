package layers

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/claimsvc/claimsvc/internal/"

// TestDependenciesPointInward: no package depends on one of ours that
// Allowed does not list for it (in particular internal/http and
// internal/dispatch never reach internal/store or internal/mqtt).
func TestDependenciesPointInward(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command on PATH")
	}
	for pkg, allowed := range Allowed {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			name, ours := strings.CutPrefix(dep, module)
			if !ours || name == pkg || slices.Contains(allowed, name) {
				continue
			}
			t.Errorf("internal/%s depends on internal/%s, which layers.Allowed does not allow", pkg, name)
		}
	}
}
