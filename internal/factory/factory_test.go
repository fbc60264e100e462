package factory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/claimsvc/claimsvc/internal/factory"
)

func TestReadCSVAnyOrderOptionalColumnsAndBadRows(t *testing.T) {
	t.Parallel()
	in := "\uFEFFDeviceName , TOKEN,durationMs,notes\n" + // a BOM, any case and order, an unknown column
		"Sensor 1,TOKEN_AAAAAAAAAA01,7d,first\n" +
		"\n" + // blank lines are skipped
		"Sensor 2,,60000,no token\n" +
		"Sensor 3,TOKEN_AAAAAAAAAA03,-5,bad duration\n" +
		"\"Sensor, 4\",TOKEN_AAAAAAAAAA04,,quoted comma\n" +
		"Sensor 5,TOKEN WITH SPACE,,bad token\n"
	sh, err := factory.ReadCSV(strings.NewReader(in), factory.ForImport)
	if err != nil {
		t.Fatal(err)
	}
	if len(sh.Rows) != 2 || sh.Rows[0].Line != 2 || sh.Rows[0].DeviceName != "Sensor 1" || *sh.Rows[0].DurationMs != 7*24*3600*1000 ||
		sh.Rows[0].HasSecret || sh.Rows[1].Line != 6 || sh.Rows[1].DeviceName != "Sensor, 4" || sh.Rows[1].DurationMs != nil {
		t.Fatalf("rows: %+v", sh.Rows)
	}
	var lines []int
	for _, p := range sh.Problems {
		lines = append(lines, p.Line)
	}
	if len(lines) != 3 || lines[0] != 4 || lines[1] != 5 || lines[2] != 7 || !strings.Contains(sh.Problems[0].Problem, "token") ||
		!strings.Contains(sh.Problems[1].Problem, "durationMs") {
		t.Fatalf("problems: %+v", sh.Problems)
	}
	if len(sh.Ignored) != 1 || sh.Ignored[0] != "notes" || !sh.Has[factory.ColToken] || sh.Has[factory.ColSecretKey] {
		t.Fatalf("header: %+v %v", sh.Ignored, sh.Has)
	}
	// Semicolons, as a spreadsheet in many countries saves CSV.
	sh, err = factory.ReadCSV(strings.NewReader("token;secretKey;delivery\nTOKEN_AAAAAAAAAA01;s1;ATTRIBUTE\nTOKEN_AAAAAAAAAA02; s2;\n"), factory.ForImport)
	if err != nil || len(sh.Rows) != 0 || len(sh.Problems) != 2 || !strings.Contains(sh.Problems[0].Problem, "deviceName") ||
		!strings.Contains(sh.Problems[1].Problem, "space") {
		t.Fatalf("semicolons: %+v %+v %v", sh.Rows, sh.Problems, err)
	}
	for _, bad := range []string{"", "deviceName,secretKey\nx,y\n", "token,token\n"} {
		if _, err := factory.ReadCSV(strings.NewReader(bad), factory.ForImport); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := factory.ReadCSV(strings.NewReader("token,deviceName\nT,x\n"), factory.ForLabels); err == nil {
		t.Error("labels without secretKey: no error")
	}
}

// TestResultsFileIsNoFormula: a name or secret a spreadsheet would take for a
// formula is written with a quote in front, and read back as it was by the
// next run and by labels.
func TestResultsFileIsNoFormula(t *testing.T) {
	t.Parallel()
	sh, err := factory.ReadCSV(strings.NewReader("token,deviceName,secretKey\nTOKEN_AAAAAAAAAA01,\"=HYPERLINK(\"\"x\"\")\",-40C\n"), factory.ForImport)
	if err != nil || len(sh.Rows) != 1 {
		t.Fatal(sh, err)
	}
	path := filepath.Join(t.TempDir(), "results.csv")
	outs := []factory.Outcome{{Result: factory.ResultCreated}}
	if err := factory.WriteResultsFile(path, factory.Results(sh.Rows, outs, nil), true); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Contains(raw, []byte(`"'=HYPERLINK(""x"")"`)) || !bytes.Contains(raw, []byte(",'-40C")) {
		t.Fatalf("results:\n%s", raw)
	}
	lab, err := factory.ReadCSV(bytes.NewReader(raw), factory.ForLabels)
	if err != nil || len(lab.Rows) != 1 || lab.Rows[0].DeviceName != `=HYPERLINK("x")` || lab.Rows[0].SecretKey != "-40C" {
		t.Fatalf("read back: %+v %v", lab.Rows, err)
	}
	prev, err := factory.PreviousSecrets(path)
	if err != nil || len(prev) != 1 || prev[0].DeviceName != `=HYPERLINK("x")` || prev[0].SecretKey != "-40C" {
		t.Fatalf("previous: %+v %v", prev, err)
	}
}

// TestFileWithoutHeaderShowsNoSecrets: a file whose first row is a device
// (no header) is refused without quoting that row's token or secret.
func TestFileWithoutHeaderShowsNoSecrets(t *testing.T) {
	t.Parallel()
	in := "A1B2C3D4E5F6G7H8I9J0,Sensor 1,7KQM-X2HD-9RWB-CT4F\nA1B2C3D4E5F6G7H8I9J1,Sensor 2,8KQM-X2HD-9RWB-CT4F\n"
	for _, use := range []factory.Use{factory.ForImport, factory.ForLabels} {
		_, err := factory.ReadCSV(strings.NewReader(in), use)
		if err == nil {
			t.Fatal("no error")
		}
		for _, secret := range []string{"A1B2C3D4E5F6G7H8I9J0", "7KQM-X2HD-9RWB-CT4F"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error quotes %q: %v", secret, err)
			}
		}
		if !strings.Contains(err.Error(), "header") || !strings.Contains(err.Error(), "3 other cells") {
			t.Errorf("the error does not say what is wrong: %v", err)
		}
	}
}

func TestIdempotencyKeyFollowsTheContent(t *testing.T) {
	t.Parallel()
	ms := int64(60000)
	a := factory.Row{Line: 2, Token: "TOKEN_AAAAAAAAAA01", SecretKey: "s", HasSecret: true, DurationMs: &ms, DeviceName: "D"}
	b := a
	b.Line = 9 // where the row is does not matter
	if factory.IdempotencyKey(a) != factory.IdempotencyKey(b) {
		t.Fatal("the same row, another key")
	}
	for _, change := range []func(*factory.Row){
		func(r *factory.Row) { r.SecretKey = "t" },
		func(r *factory.Row) { r.HasSecret, r.SecretKey = false, "" },
		func(r *factory.Row) { r.DurationMs = nil },
		func(r *factory.Row) { r.Delivery = "http" },
		func(r *factory.Row) { r.DeviceName = "E" },
		func(r *factory.Row) { r.Token = "TOKEN_AAAAAAAAAA02" },
	} {
		c := a
		change(&c)
		if factory.IdempotencyKey(c) == factory.IdempotencyKey(a) {
			t.Errorf("changed row %+v, same key", c)
		}
	}
	k := factory.IdempotencyKey(a)
	if len(k) > 128 || strings.Contains(k, "s") && strings.Contains(k, a.Token) {
		t.Fatalf("key %q", k)
	}
}

func TestNewSecretIsReadableAndRandom(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		s := factory.NewSecret()
		if !regexp.MustCompile(`^[2-9A-HJKMNP-Z]{4}(-[2-9A-HJKMNP-Z]{4}){3}$`).MatchString(s) || seen[s] {
			t.Fatalf("secret %q", s)
		}
		seen[s] = true
	}
}

// chunks is a Submitter that stores in memory and can fail a chunk.
type chunks struct {
	sizes  []int
	failAt int // the chunk (1-based) that fails; 0: none
	stored map[string]bool
}

func (c *chunks) Submit(_ context.Context, rows []factory.Row) ([]factory.Outcome, error) {
	c.sizes = append(c.sizes, len(rows))
	if len(c.sizes) == c.failAt {
		return nil, errors.New("network cut")
	}
	out := make([]factory.Outcome, len(rows))
	for i, r := range rows {
		if r.IdempotencyKey == "" {
			return nil, errors.New("no key")
		}
		out[i] = factory.Outcome{Result: factory.ResultCreated, ClaimID: r.IdempotencyKey, Status: "pending"}
		if c.stored[r.IdempotencyKey] {
			out[i].Result = factory.ResultReplayed
		}
		c.stored[r.IdempotencyKey] = true
	}
	return out, nil
}

func TestImportChunksAndStopsAtAFailure(t *testing.T) {
	t.Parallel()
	rows := make([]factory.Row, 10)
	for i := range rows {
		rows[i] = factory.Row{Line: i + 2, Token: "TOKEN_AAAAAAAA" + string(rune('A'+i))}
	}
	sub := &chunks{failAt: 3, stored: map[string]bool{}}
	var last factory.Progress
	outs, err := factory.Import(t.Context(), sub, rows, 4, func(p factory.Progress, _ []factory.Row, _ []factory.Outcome) { last = p })
	if err == nil || !strings.Contains(err.Error(), "lines 10-11") || last.Done != 8 || last.Created != 8 {
		t.Fatalf("first run: %v %+v", err, last)
	}
	if outs[7].Result != factory.ResultCreated || outs[8].Result != factory.ResultNotSent {
		t.Fatalf("outcomes: %+v", outs)
	}
	sub.failAt = 0
	outs, err = factory.Import(t.Context(), sub, rows, 4, nil)
	if err != nil || outs[0].Result != factory.ResultReplayed || outs[9].Result != factory.ResultCreated || len(sub.stored) != 10 {
		t.Fatalf("second run: %v %+v", err, outs)
	}
	if fmt.Sprint(sub.sizes) != "[4 4 2 4 4 2]" {
		t.Fatalf("chunks: %v", sub.sizes)
	}
}

func TestResultsKeepGeneratedSecretsForTheNextRun(t *testing.T) {
	t.Parallel()
	sh, err := factory.ReadCSV(strings.NewReader("token,deviceName,secretKey\nTOKEN_AAAAAAAAAA01,D1,\nTOKEN_AAAAAAAAAA02,D2,given\nbad token,D3,\n"), factory.ForImport)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "results.csv")
	prev, err := factory.PreviousSecrets(path)
	if err != nil || prev != nil {
		t.Fatal(prev, err)
	}
	if reused, made, _ := factory.FillSecrets(sh.Rows, prev); reused != 0 || made != 1 {
		t.Fatalf("first fill: %d %d", reused, made)
	}
	generated := sh.Rows[0].SecretKey
	outs := []factory.Outcome{{Result: factory.ResultNotSent}, {Result: factory.ResultNotSent}}
	if err := factory.WriteResultsFile(path, factory.Results(sh.Rows, outs, sh.Problems), true); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("results with secrets: mode %v", fi.Mode())
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("TOKEN_AAAAAAAAAA01")) || !bytes.Contains(raw, []byte("TOKE…01")) ||
		!bytes.Contains(raw, []byte("4,,,,invalid")) || !bytes.Contains(raw, []byte(generated)) {
		t.Fatalf("results:\n%s", raw)
	}
	// The next run reads the file again: the same secret for the same row.
	again, _ := factory.ReadCSV(strings.NewReader("token,deviceName,secretKey\nTOKEN_AAAAAAAAAA01,D1,\nTOKEN_AAAAAAAAAA02,D2,given\n"), factory.ForImport)
	prev, err = factory.PreviousSecrets(path)
	if err != nil {
		t.Fatal(err)
	}
	if reused, made, _ := factory.FillSecrets(again.Rows, prev); reused != 1 || made != 0 || again.Rows[0].SecretKey != generated {
		t.Fatalf("second fill: %d %d %q", reused, made, again.Rows[0].SecretKey)
	}
	// The same file again after a run that stored both rows: every stored
	// claim's row is there, nothing to keep aside (the row that brings its own
	// secret included).
	stored := make([]factory.Previous, len(prev))
	for i, p := range prev {
		p.Result = factory.ResultCreated
		stored[i] = p
	}
	rerun, _ := factory.ReadCSV(strings.NewReader("token,deviceName,secretKey\nTOKEN_AAAAAAAAAA01,D1,\nTOKEN_AAAAAAAAAA02,D2,given\n"), factory.ForImport)
	if reused, _, left := factory.FillSecrets(rerun.Rows, stored); reused != 1 || len(left) != 0 {
		t.Fatalf("a rerun of the same file: %d reused, left aside %+v", reused, left)
	}
	// A fixed CSV moves the row (a line above it deleted): still the same
	// secret, found by name and token hint.
	moved, _ := factory.ReadCSV(strings.NewReader("token,deviceName,secretKey\n\n\nTOKEN_AAAAAAAAAA01,D1,\n"), factory.ForImport)
	if reused, _, _ := factory.FillSecrets(moved.Rows, prev); reused != 1 || moved.Rows[0].SecretKey != generated {
		t.Fatalf("moved row: %d %q", reused, moved.Rows[0].SecretKey)
	}
	// The results file saved again by a spreadsheet (byte order mark,
	// semicolons) still gives its secrets.
	resaved := filepath.Join(t.TempDir(), "resaved.csv")
	semi := strings.ReplaceAll(string(raw), ",", ";")
	if err := os.WriteFile(resaved, append([]byte{0xEF, 0xBB, 0xBF}, semi...), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := factory.PreviousSecrets(resaved); err != nil || len(p) != 2 || p[0].SecretKey != generated {
		t.Fatalf("resaved: %+v %v", p, err)
	}
	// Labels read the results file.
	lab, err := factory.ReadCSV(bytes.NewReader(raw), factory.ForLabels)
	if err != nil || len(lab.Rows) != 2 || lab.Rows[0].SecretKey != generated || len(lab.Problems) != 1 {
		t.Fatalf("labels from results: %+v %+v %v", lab.Rows, lab.Problems, err)
	}
}

func TestQRContent(t *testing.T) {
	t.Parallel()
	if got := factory.QRContent("", "Sensor <1>", `s"1`); got != `{"deviceName":"Sensor <1>","secretKey":"s\"1"}` {
		t.Fatalf("json: %s", got)
	}
	if got := factory.QRContent("https://claim.example.com/?d={deviceName}&s={secretKey}", "Sensor 1", "a&b"); got != "https://claim.example.com/?d=Sensor+1&s=a%26b" {
		t.Fatalf("template: %s", got)
	}
	var buf bytes.Buffer
	skipped, err := factory.Labels(&buf, []factory.Row{{Line: 2, DeviceName: "Gerät ✓", SecretKey: "x"}, {Line: 3, DeviceName: "Gerät 2", SecretKey: "x"}},
		factory.LabelOptions{})
	if err != nil || len(skipped) != 1 || skipped[0].Line != 2 || !bytes.HasPrefix(buf.Bytes(), []byte("%PDF")) {
		t.Fatalf("labels: %v %+v", err, skipped)
	}
	if _, err := factory.Labels(&buf, []factory.Row{{DeviceName: "a", SecretKey: "b"}}, factory.LabelOptions{QRTemplate: "https://x/"}); err == nil {
		t.Fatal("a template without placeholders")
	}
}

// TestLabelTextStaysOnItsLabel: on every grid a label sheet offers, each
// secret is printed whole on one line (a customer types it); a name too long
// for its label is left out and reported, not printed over the next one; a
// grid too fine for the text is refused.
func TestLabelTextStaysOnItsLabel(t *testing.T) {
	t.Parallel()
	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("pdftotext (Debian's poppler-utils) is missing: scripts/deps.sh installs it")
		}
		t.Skip("needs pdftotext (Debian's poppler-utils; sudo scripts/deps.sh)")
	}
	for _, g := range [][2]int{{3, 8}, {3, 10}, {4, 10}, {4, 12}, {2, 5}} {
		var rows []factory.Row
		for i := range g[0] * g[1] {
			rows = append(rows, factory.Row{Line: i + 2, DeviceName: fmt.Sprintf("Thermostat T%04d", i), SecretKey: factory.NewSecret(), HasSecret: true})
		}
		rows = append(rows, factory.Row{Line: 999, DeviceName: strings.Repeat("Long device name ", 15), SecretKey: factory.NewSecret(), HasSecret: true})
		path := filepath.Join(t.TempDir(), "labels.pdf")
		var b bytes.Buffer
		skipped, err := factory.Labels(&b, rows, factory.LabelOptions{Cols: g[0], Rows: g[1]})
		if err != nil {
			t.Fatalf("%dx%d: %v", g[0], g[1], err)
		}
		if len(skipped) != 1 || skipped[0].Line != 999 {
			t.Fatalf("%dx%d: skipped %+v, want the long name only", g[0], g[1], skipped)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(pdftotext, "-layout", path, "-").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows[:len(rows)-1] {
			if !bytes.Contains(out, []byte(r.SecretKey)) {
				t.Fatalf("%dx%d: the secret %s is not printed whole on one line", g[0], g[1], r.SecretKey)
			}
		}
	}
	one := []factory.Row{{Line: 2, DeviceName: "Sensor", SecretKey: factory.NewSecret(), HasSecret: true}}
	for _, g := range [][2]int{{5, 13}, {6, 20}} {
		if _, err := factory.Labels(&bytes.Buffer{}, one, factory.LabelOptions{Cols: g[0], Rows: g[1]}); err == nil || !strings.Contains(err.Error(), "too small") {
			t.Fatalf("a %dx%d grid: %v", g[0], g[1], err)
		}
	}
}
