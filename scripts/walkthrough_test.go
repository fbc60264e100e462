package scripts

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's walk-through is the fenced block after a line starting with
// walkthroughMarker. Within it:
//   - each command (a line not starting with #, with its \ continuation
//     lines) is one step, run in one bash so that variables carry over;
//   - a comment "# → CODE …" after a command is what it must answer: CODE is
//     the HTTP status of its last curl, and when the rest of the line holds a
//     { or [, from there to the end is the body, where … stands for anything;
//   - a command without "# →" must exit 0 with no HTTP status of 400 or more;
//   - <name> stands for the field "name" of the latest JSON answer that had
//     it (as a reader copies the id from step 1), in commands and bodies;
//   - other comments are for the reader.
const walkthroughMarker = "<!-- walkthrough"

type step struct {
	line   int // in the README, of the command's first line
	cmd    string
	expect *expectation
}

type expectation struct {
	code string
	body string // "" checks only the code
}

var placeholder = regexp.MustCompile(`<([A-Za-z][A-Za-z0-9_]*)>`)

func readWalkthrough(t *testing.T, path string) []step {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := parseWalkthrough(string(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return steps
}

func parseWalkthrough(doc string) ([]step, error) {
	sc := bufio.NewScanner(strings.NewReader(doc))
	n, state := 0, "before" // before → marked → inside → done
	var steps []step
	continued := false
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch state {
		case "before":
			if strings.HasPrefix(trimmed, walkthroughMarker) {
				state = "marked"
			}
			continue
		case "marked":
			if strings.HasPrefix(trimmed, "```") {
				state = "inside"
			} else if trimmed != "" {
				return nil, fmt.Errorf("line %d: the walk-through marker must be followed by a fenced block", n)
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			state = "done"
			break
		}
		switch {
		case continued:
			steps[len(steps)-1].cmd += "\n" + line
		case trimmed == "":
		case strings.HasPrefix(trimmed, "# →"):
			if len(steps) == 0 || steps[len(steps)-1].expect != nil {
				return nil, fmt.Errorf("line %d: an expected answer without a command before it", n)
			}
			e, err := parseExpectation(strings.TrimSpace(strings.TrimPrefix(trimmed, "# →")))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			steps[len(steps)-1].expect = &e
		case strings.HasPrefix(trimmed, "#"):
		default:
			steps = append(steps, step{line: n, cmd: line})
		}
		continued = trimmed != "" && !strings.HasPrefix(trimmed, "#") && strings.HasSuffix(trimmed, `\`)
	}
	switch {
	case state == "before":
		return nil, fmt.Errorf("no walk-through: mark its fenced block with a line %s -->", walkthroughMarker)
	case state != "done":
		return nil, errors.New("the walk-through's fenced block is not closed")
	case len(steps) == 0:
		return nil, errors.New("the walk-through has no command")
	}
	return steps, nil
}

func parseExpectation(s string) (expectation, error) {
	code, rest, _ := strings.Cut(s, " ")
	if len(code) != 3 || strings.Trim(code, "0123456789") != "" {
		return expectation{}, fmt.Errorf("%q: want \"# → CODE …\" with a 3-digit HTTP status", s)
	}
	e := expectation{code: code}
	if i := strings.IndexAny(rest, "{["); i >= 0 {
		e.body = strings.TrimSpace(rest[i:])
	}
	return e, nil
}

// substitute fills the step's placeholders from earlier answers.
func (s step) substitute(vars map[string]string) (string, error) {
	return fill(s.cmd, vars)
}

func fill(text string, vars map[string]string) (string, error) {
	var missing []string
	out := placeholder.ReplaceAllStringFunc(text, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, m)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s: no earlier answer had such a field", strings.Join(missing, ", "))
	}
	return out, nil
}

// check compares a step's result with what the README says it answers.
func (s step) check(r result, vars map[string]string) error {
	if r.rc != 0 {
		return fmt.Errorf("exit status %d", r.rc)
	}
	if s.expect == nil {
		for _, c := range r.codes {
			if c >= "400" {
				return fmt.Errorf("HTTP %s where the README expects no error", c)
			}
		}
		return nil
	}
	if len(r.codes) == 0 {
		return fmt.Errorf("no HTTP answer, want %s", s.expect.code)
	}
	if got := r.codes[len(r.codes)-1]; got != s.expect.code {
		return fmt.Errorf("HTTP %s, the README says %s", got, s.expect.code)
	}
	if s.expect.body == "" {
		return nil
	}
	re, err := bodyPattern(s.expect.body, vars)
	if err != nil {
		return err
	}
	if !re.MatchString(r.stdout) {
		return fmt.Errorf("the body does not match the README's %s", s.expect.body)
	}
	return nil
}

// bodyPattern: the README's body with … as a wildcard, placeholders filled.
func bodyPattern(body string, vars map[string]string) (*regexp.Regexp, error) {
	body, err := fill(body, vars)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(body, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.Compile(`^(?s)` + strings.Join(parts, `.*`) + `$`)
}

// collect keeps the top-level string fields of a JSON answer for later
// placeholders.
func collect(vars map[string]string, stdout string) {
	var obj map[string]any
	if json.Unmarshal([]byte(stdout), &obj) != nil {
		return
	}
	for k, v := range obj {
		if s, ok := v.(string); ok {
			vars[k] = s
		}
	}
}

// TestWalkthroughParses keeps the README's walk-through runnable even where
// the namespace test cannot run: it must parse, and every placeholder must be
// one an earlier step can fill.
func TestWalkthroughParses(t *testing.T) {
	steps := readWalkthrough(t, "../README.md")
	withExpect := 0
	for _, s := range steps {
		if s.expect != nil {
			withExpect++
		}
	}
	if withExpect == 0 {
		t.Error("no step of the walk-through says what it answers (# → CODE …)")
	}
	t.Logf("%d steps, %d with an expected answer", len(steps), withExpect)
}

func TestParseWalkthrough(t *testing.T) {
	doc := "intro\n<!-- walkthrough -->\n```sh\n# say\ncurl -s a \\\n  -d '{}'\n# → 201 created: {\"id\":\"…\"}\n#   more words\nX=$(curl b)\n\ncurl c/<id>\n# → 409 prose only\n```\n"
	steps, err := parseWalkthrough(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 {
		t.Fatalf("want 3 steps, got %+v", steps)
	}
	if steps[0].cmd != "curl -s a \\\n  -d '{}'" || steps[0].line != 5 || steps[0].expect.code != "201" || steps[0].expect.body != `{"id":"…"}` {
		t.Errorf("step 1: %+v %+v", steps[0], steps[0].expect)
	}
	if steps[1].expect != nil || steps[2].expect.code != "409" || steps[2].expect.body != "" {
		t.Errorf("steps 2, 3: %+v %+v", steps[1], steps[2])
	}
	if _, err := steps[2].substitute(map[string]string{}); err == nil {
		t.Error("an unfilled placeholder must be an error")
	}
	vars := map[string]string{}
	collect(vars, `{"id":"abc","n":1}`)
	if c, _ := steps[2].substitute(vars); c != "curl c/abc" {
		t.Errorf("substitute: %q", c)
	}
	re, err := bodyPattern(`{"id":"<id>",…,"x":1…}`, vars)
	if err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]bool{`{"id":"abc","y":2,"x":1}`: true, `{"id":"abd","x":1}`: false, `{"id":"abc","x":2}`: false} {
		if re.MatchString(body) != want {
			t.Errorf("%s: match %v, want %v", body, !want, want)
		}
	}
	for _, bad := range []string{"no marker", "<!-- walkthrough -->\ntext\n```sh\n```\n", "<!-- walkthrough -->\n```sh\n# → 200\n```\n", "<!-- walkthrough -->\n```sh\ncurl x\n"} {
		if _, err := parseWalkthrough(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
