// Package doccheck checks that the repository stands alone: code and docs cite
// only documents inside it, by section, and name no path outside it.
//
// The rules:
//   - A § citation names a Markdown file by its path from the repository root,
//     then the section: `docs/thingsboard.md §1.2`. Later sections of a list
//     in the same sentence inherit the file: `docs/design.md §2, §8`.
//   - The file must exist, and must have a heading with that number
//     (`## 1.2 MQTT device API`, `## 2. HTTP API`).
//   - Inside a Markdown file a bare §N cites that file's own section N.
//     Elsewhere a bare §N is an error: the reader cannot tell what it cites.
//   - `RFC 8259 §7` is allowed: it cites a public standard, not a file.
//   - Nothing names a developer machine's path (/work/, /home/, /Users/), the
//     notes the project started from (shared/docs, thingsboard-claiming.md,
//     go-practice.md, a bare firmware.md), or "the shared design".
//   - docs/… paths and path#anchor mentions must exist, and so must the
//     targets of relative Markdown links, anchors included.
//
// Check is run over the whole repository by TestRepositoryStandsAlone.
package doccheck

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Problem is one finding: a file, a 1-based line, and what is wrong.
type Problem struct {
	Path string
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.Path, p.Line, p.Msg) }

// skipDirs are never read: version control, build outputs and fetched code.
var skipDirs = map[string]bool{
	".git": true, "build": true, "bin": true, "node_modules": true, "managed_components": true, ".cache": true,
}

// Self is this package's directory. Its sources hold the forbidden patterns
// as test data, so Check does not read them.
const Self = "internal/doccheck"

// maxFile bounds what is read; larger files are data, not docs or code.
const maxFile = 1 << 20

// Check reads every text file of the repository rooted at fsys and returns
// its problems, sorted by path and line.
func Check(fsys fs.FS) ([]Problem, error) {
	c := &checker{fsys: fsys, docs: map[string]*mdIndex{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (skipDirs[d.Name()] || p == Self) {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() == ".git" { // a worktree's pointer to its repository
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > maxFile {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data) {
			return nil // binary
		}
		c.file(p, string(data))
		return nil
	})
	sort.SliceStable(c.problems, func(i, j int) bool {
		a, b := c.problems[i], c.problems[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Line < b.Line
	})
	return c.problems, err
}

type checker struct {
	fsys     fs.FS
	docs     map[string]*mdIndex // Markdown files read for their sections and anchors
	problems []Problem
}

func (c *checker) add(p string, line int, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: p, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// file checks one file.
func (c *checker) file(p, text string) {
	c.outside(p, text)
	f := flatten(p, text)
	c.citations(p, f)
	c.mentions(p, f)
	if isMarkdown(p) {
		c.links(p, text)
	}
}

// --- paths and documents outside the repository ------------------------------------------------

var outsidePatterns = []struct {
	re  *regexp.Regexp
	msg string
}{
	{regexp.MustCompile(`/work/|/home/[\w.-]+/|/Users/[\w.-]+/`),
		"names an absolute path outside the repository (%s)"},
	{regexp.MustCompile(`shared/docs\b`),
		"names the notes outside the repository (%s); cite docs/design.md or docs/thingsboard.md"},
	{regexp.MustCompile(`(?i)\bshared design\b`),
		"cites the design outside the repository (%s); cite docs/design.md §N"},
	{regexp.MustCompile(`thingsboard-claiming\.md`),
		"names a document outside the repository (%s); it is docs/thingsboard.md"},
	{regexp.MustCompile(`go-practice\.md`),
		"names a document outside the repository (%s)"},
	{regexp.MustCompile(`(?:^|[^\w/.-])(firmware\.md)`),
		"names a document outside the repository (%s); cite firmware/README.md or docs/design.md §7"},
}

func (c *checker) outside(p, text string) {
	for i, line := range strings.Split(text, "\n") {
		for _, o := range outsidePatterns {
			for _, m := range o.re.FindAllStringSubmatchIndex(line, -1) {
				s, e := m[0], m[1]
				if len(m) > 2 && m[2] >= 0 {
					s, e = m[2], m[3]
				}
				c.add(p, i+1, o.msg, line[s:e])
			}
		}
	}
}

// --- § citations ---------------------------------------------------------------------------------

var (
	sectionRe  = regexp.MustCompile(`^§ ?(\d+(?:\.\d+)*)`)
	fileBefore = regexp.MustCompile("([\\w./-]*[\\w-]\\.md)`?\\s*$")
	rfcBefore  = regexp.MustCompile(`RFC ?\d+\s*$`)
	// glueBreak ends the list a continued citation may belong to: the end of
	// a sentence or clause, a table cell, a paragraph or a list item.
	glueBreak = regexp.MustCompile(`[.!?;:](\s|$)|\||\n`)
)

// lookBack is how far before a § its file name is looked for.
const lookBack = 200

// maxGlue is the most text between two sections of one citation list
// ("§4.1 rows 6-10 and §3.3").
const maxGlue = 60

func (c *checker) citations(p string, f flat) {
	var lastFile string // the file of the citation list in progress ("" when none)
	lastEnd := -1
	for off := 0; ; {
		i := strings.Index(f.text[off:], "§")
		if i < 0 {
			return
		}
		at := off + i
		off = at + len("§")
		m := sectionRe.FindStringSubmatch(f.text[at:])
		if m == nil {
			continue // a lone § that cites nothing
		}
		sec, end := m[1], at+len(m[0])
		line := f.line(at)
		before := f.text[max(0, at-lookBack):at]
		switch fm := fileBefore.FindStringSubmatch(before); {
		case fm != nil:
			file := fm[1]
			if c.citedFile(p, line, file) {
				c.section(p, line, file, sec)
				lastFile, lastEnd = file, end
			} else {
				lastFile = ""
			}
		case rfcBefore.MatchString(before):
			lastFile = ""
		case lastFile != "" && len(f.text[lastEnd:at]) <= maxGlue && !glueBreak.MatchString(f.text[lastEnd:at]):
			c.section(p, line, lastFile, sec)
			lastEnd = end
		case isMarkdown(p):
			c.section(p, line, p, sec)
			lastFile, lastEnd = p, end
		default:
			c.add(p, line, "bare §%s: say which document it cites, as docs/<file>.md §%s", sec, sec)
			lastFile = ""
		}
	}
}

// citedFile reports whether file, cited from p, is a Markdown file of the
// repository named by its path from the root.
func (c *checker) citedFile(p string, line int, file string) bool {
	clean := path.Clean(file)
	if clean == file && !strings.HasPrefix(file, "../") && !strings.HasPrefix(file, "/") && c.exists(file) {
		return true
	}
	if rel := path.Join(path.Dir(p), file); c.exists(rel) {
		c.add(p, line, "cites %s §…: name it from the repository root, as %s", file, rel)
	} else {
		c.add(p, line, "cites %s, which is not in the repository", file)
	}
	return false
}

func (c *checker) section(p string, line int, file, sec string) {
	if !c.index(file).sections[sec] {
		c.add(p, line, "%s has no section §%s (no heading numbered %s)", file, sec, sec)
	}
}

// --- docs/ paths and path#anchor mentions ------------------------------------------------------------

var (
	docsPathRe = regexp.MustCompile(`(?:^|[^\w./-])(docs/[\w./-]*[\w-]\.md)(#[\w-]+)?`)
	anchorRe   = regexp.MustCompile(`(?:^|[^\w./#-])([\w./-]*[\w-]\.md)(#[\w-]+)`)
)

// mentions checks docs/… paths and file#anchor mentions in text (links in
// Markdown are checked by links, relative to their file).
func (c *checker) mentions(p string, f flat) {
	seen := map[[2]int]bool{}
	for _, re := range []*regexp.Regexp{docsPathRe, anchorRe} {
		for _, m := range re.FindAllStringSubmatchIndex(f.text, -1) {
			if seen[[2]int{m[2], m[3]}] || inLinkTarget(f.text, m[2]) {
				continue
			}
			seen[[2]int{m[2], m[3]}] = true
			file, line := f.text[m[2]:m[3]], f.line(m[2])
			if !c.exists(file) {
				c.add(p, line, "names %s, which is not in the repository", file)
				continue
			}
			if m[4] >= 0 {
				c.anchor(p, line, file, f.text[m[4]+1:m[5]])
			}
		}
	}
}

// inLinkTarget reports whether position i is inside a Markdown link's "(…)".
func inLinkTarget(text string, i int) bool {
	j := strings.LastIndexAny(text[:i], "()\n ")
	return j >= 1 && text[j] == '(' && text[j-1] == ']'
}

var linkRe = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// links checks the relative link targets of a Markdown file.
func (c *checker) links(p, text string) {
	for i, line := range strings.Split(text, "\n") {
		for _, m := range linkRe.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			if file == "" {
				file = p
			} else {
				file = path.Join(path.Dir(p), file)
			}
			if !c.exists(file) {
				c.add(p, i+1, "links to %s, which is not in the repository", target)
				continue
			}
			if anchor != "" && isMarkdown(file) {
				c.anchor(p, i+1, file, anchor)
			}
		}
	}
}

func (c *checker) anchor(p string, line int, file, anchor string) {
	if !c.index(file).anchors[anchor] {
		c.add(p, line, "%s has no heading with the anchor #%s", file, anchor)
	}
}

func (c *checker) exists(p string) bool {
	if !fs.ValidPath(p) {
		return false
	}
	_, err := fs.Stat(c.fsys, p)
	return err == nil
}

// --- Markdown headings ---------------------------------------------------------------------------

// mdIndex is what a Markdown file offers to citations: numbered sections and
// heading anchors.
type mdIndex struct {
	sections map[string]bool
	anchors  map[string]bool
}

var (
	headingRe = regexp.MustCompile(`^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$`)
	numberRe  = regexp.MustCompile(`^(?:§ ?)?(\d+(?:\.\d+)*)\.?(?:\s|$)`)
	fenceRe   = regexp.MustCompile("^ {0,3}(```|~~~)")
)

func (c *checker) index(file string) *mdIndex {
	if x, ok := c.docs[file]; ok {
		return x
	}
	x := &mdIndex{sections: map[string]bool{}, anchors: map[string]bool{}}
	c.docs[file] = x
	data, err := fs.ReadFile(c.fsys, file)
	if err != nil || !isMarkdown(file) {
		return x
	}
	inFence := false
	for _, line := range strings.Split(string(data), "\n") {
		if fenceRe.MatchString(line) {
			inFence = !inFence
			continue
		}
		m := headingRe.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		if n := numberRe.FindStringSubmatch(m[2]); n != nil {
			x.sections[n[1]] = true
		}
		a := Slug(m[2])
		for i := 1; x.anchors[a]; i++ { // GitHub numbers repeated headings
			a = fmt.Sprintf("%s-%d", Slug(m[2]), i)
		}
		x.anchors[a] = true
	}
	return x
}

// Slug is the anchor GitHub gives a heading: lower case, punctuation dropped,
// spaces turned into hyphens.
func Slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// --- reading text through comments ---------------------------------------------------------------

// flat is a file's text with comment markers removed and wrapped lines joined
// by a space, so that a citation broken over two comment lines reads as one.
// Paragraph breaks, list items, table rows and headings start with "\n".
type flat struct {
	text   string
	starts []int // offset in text where each line (1-based: index+1) begins
}

func (f flat) line(off int) int {
	return sort.Search(len(f.starts), func(i int) bool { return f.starts[i] > off })
}

var blockStart = regexp.MustCompile(`^([-*+] |\d+[.)] |\||#)`)

func flatten(p, text string) flat {
	markers := commentMarkers(p)
	var b strings.Builder
	var f flat
	for _, line := range strings.Split(text, "\n") {
		content := strings.TrimSpace(line)
		for _, m := range markers {
			if strings.HasPrefix(content, m) {
				content = strings.TrimSpace(strings.TrimPrefix(content, m))
				break
			}
		}
		content = strings.TrimSpace(strings.TrimSuffix(content, "*/"))
		if content == "" || blockStart.MatchString(content) {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
		f.starts = append(f.starts, b.Len())
		b.WriteString(content)
	}
	f.text = b.String()
	return f
}

// commentMarkers are the line-comment prefixes of p's language, longest first.
func commentMarkers(p string) []string {
	base := path.Base(p)
	switch ext := path.Ext(base); {
	case ext == ".go":
		return []string{"//"}
	case ext == ".c" || ext == ".h" || ext == ".cpp":
		return []string{"/*", "//", "*"}
	case ext == ".sql":
		return []string{"--"}
	case slices.Contains([]string{".sh", ".yaml", ".yml", ".toml", ".cmake", ".csv", ".env", ".example", ".defaults", ".projbuild"}, ext),
		base == "Makefile", base == "Dockerfile", base == "CMakeLists.txt", ext == "":
		return []string{"#"}
	}
	return nil
}

func isMarkdown(p string) bool { return strings.HasSuffix(p, ".md") }
