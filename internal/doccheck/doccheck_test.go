package doccheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// TestRepositoryStandsAlone checks the whole repository: every § citation
// names a document of the repository and a section it has, and nothing points
// outside the repository.
func TestRepositoryStandsAlone(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	problems, err := Check(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) > 0 {
		t.Logf("%d problems. Cite documents of the repository as docs/<file>.md §N, with N a numbered heading "+
			"of that file (docs/design.md, docs/thingsboard.md); the package comment of internal/doccheck "+
			"gives the rules.", len(problems))
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// TestCitedSectionsKept guards the numbering that code and other branches
// cite: docs/thingsboard.md keeps the sections of the ThingsBoard notes it
// restates, and docs/design.md the nine contract sections plus §10 and §11.
func TestCitedSectionsKept(t *testing.T) {
	t.Parallel()
	c := &checker{fsys: os.DirFS(repoRoot(t)), docs: map[string]*mdIndex{}}
	for file, secs := range map[string]string{
		"docs/thingsboard.md": "0 1 1.1 1.2 1.3 1.4 1.5 1.6 2 3 3.1 3.2 3.3 4 4.1 4.2 4.3 5 6 7 7.1 7.2 7.3 7.4 7.5 7.6 7.7 8 9",
		"docs/design.md":      "1 2 3 4 5 6 7 8 9 10 11",
	} {
		have := c.index(file).sections
		for _, s := range strings.Fields(secs) {
			if !have[s] {
				t.Errorf("%s lost its section §%s, which is cited by number", file, s)
			}
		}
	}
}

// TestCheck runs the rules over a small made-up repository and expects each
// planted problem, and nothing else, to be found.
func TestCheck(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"docs/design.md": {Data: []byte("# Design\n\n## 2. HTTP API\n\n### 2.1 Create a claim\n\n" +
			"```\n## 9. not a heading: inside a code block\n```\n\n## 11. Where we differ\n\nSee §2.1 and §2, not §9.\n")},
		"docs/thingsboard.md": {Data: []byte("# TB\n\n## 1.2 MQTT device API\n\n## 3. Storage\n")},
		"firmware/README.md":  {Data: []byte("# Firmware\n\n## Layout\n\n## Host testing (no ESP-IDF needed)\n")},

		// Good citations, each in a form the rules allow.
		"ok/a.go": {Data: []byte("// Package a (docs/design.md §2, §2.1 and docs/thingsboard.md §1.2).\n" +
			"// It follows the order of docs/thingsboard.md\n// §3: wrapped over two comment lines.\n" +
			"// Lists continue: docs/thingsboard.md §1.2 \"Topic\", §3.\n" +
			"// See firmware/README.md#layout and docs/design.md.\npackage a\n")},
		"ok/b.c": {Data: []byte("/*\n * JSON strings (RFC 8259 §7), the table of `docs/design.md` §2.1.\n */\n")},
		"ok/c.md": {Data: []byte("# C\n\n## 1. One\n\nSee §1, [design](../docs/design.md#21-create-a-claim), " +
			"[self](#1-one), [web](https://example.com/x.md) and (`docs/thingsboard.md` §3).\n")},

		// Planted problems: the comment on each line says what must be found.
		"bad/a.go": {Data: []byte("// design §2\n" + // 1: bare
			"// docs/design.md §2, §3\n" + // 2: no §3
			"// docs/design.md §2. Then §2.1 again.\n" + // 3: bare after the sentence ends
			"// design.md §2\n" + // 4: not in the repository
			"// It follows /wo" + "rk/shared/docs/thingsboard-claiming.md\n" + // 5: three outside patterns (split so that this file names no outside path)
			"// the shared design, go-practice.md and firmware.md\n" + // 6: three outside patterns
			"// firmware/README.md#nope and docs/nope.md\n" + // 7: no anchor, no file
			"package a\n")},
		"docs/bad.md": {Data: []byte("# Bad\n\n" +
			"See §4.\n" + // 3: this file has no §4
			"Cite thingsboard.md §1.2.\n" + // 4: relative name
			"[a](design.md#nope) [b](missing.md) [c](#bad)\n")}, // 5: no anchor, no file (self anchor ok)
	}
	want := []struct {
		path string
		line int
		msg  string
	}{
		{"bad/a.go", 1, "bare §2"},
		{"bad/a.go", 2, "docs/design.md has no section §3"},
		{"bad/a.go", 3, "bare §2.1"},
		{"bad/a.go", 4, "cites design.md, which is not in the repository"},
		{"bad/a.go", 5, "absolute path outside the repository (/work/)"},
		{"bad/a.go", 5, "notes outside the repository (shared/docs)"},
		{"bad/a.go", 5, "(thingsboard-claiming.md); it is docs/thingsboard.md"},
		{"bad/a.go", 6, "design outside the repository (shared design)"},
		{"bad/a.go", 6, "(go-practice.md)"},
		{"bad/a.go", 6, "(firmware.md)"},
		{"bad/a.go", 7, "firmware/README.md has no heading with the anchor #nope"},
		{"bad/a.go", 7, "names docs/nope.md, which is not in the repository"},
		{"docs/bad.md", 3, "docs/bad.md has no section §4"},
		{"docs/bad.md", 4, "name it from the repository root, as docs/thingsboard.md"},
		{"docs/bad.md", 5, "docs/design.md has no heading with the anchor #nope"},
		{"docs/bad.md", 5, "links to missing.md"},
		{"docs/design.md", 13, "docs/design.md has no section §9"},
	}
	got, err := Check(fsys)
	if err != nil {
		t.Fatal(err)
	}
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, g := range got {
			if !used[i] && g.Path == w.path && g.Line == w.line && strings.Contains(g.Msg, w.msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing: %s:%d: …%s…", w.path, w.line, w.msg)
		}
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("unexpected: %s", g)
		}
	}
}

func TestCheckSkipsItsOwnPackage(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		Self + "/x_test.go":      {Data: []byte("// design §2 /work/x\n")},
		"build/generated.go":     {Data: []byte("// design §2\n")},
		"firmware/host/bin/x.md": {Data: []byte("§9\n")},
		"img.png":                {Data: []byte("\x89PNG\x00§1")},
	}
	got, err := Check(fsys)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range got {
		t.Errorf("unexpected: %s", g)
	}
}

func TestSlug(t *testing.T) {
	t.Parallel()
	for heading, want := range map[string]string{
		"Factory provisioning: token and secret in NVS":      "factory-provisioning-token-and-secret-in-nvs",
		"Host testing (no ESP-IDF needed)":                   "host-testing-no-esp-idf-needed",
		"1.2 MQTT device API":                                "12-mqtt-device-api",
		"4.1 `POST /api/customer/device/{deviceName}/claim`": "41-post-apicustomerdevicedevicenameclaim",
		"claim-sim": "claim-sim",
	} {
		if got := Slug(heading); got != want {
			t.Errorf("Slug(%q) = %q, want %q", heading, got, want)
		}
	}
}
