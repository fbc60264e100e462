package tbemu

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file is a small re-implementation of the part of Gson that ThingsBoard uses to read claim
// payloads: JsonParser.parseString in LENIENT mode (docs/thingsboard.md §1.1, "Gson details"). It accepts what
// Gson's lenient JsonReader accepts: unquoted and single-quoted names and strings, comments
// (//, # and /* */), "=" and "=>" as name separators, ";" as a member separator, implicit nulls in
// arrays, case-insensitive keywords, the ")]}'\n" non-execute prefix, and any value at the top level.
// Error messages follow Gson's wording but do not reproduce its JSON path suffix.

// jsonKind is the type of a parsed Gson JsonElement.
type jsonKind int

const (
	jsonNull jsonKind = iota
	jsonString
	jsonNumber // text holds the literal as written (Gson's LazilyParsedNumber)
	jsonBool
	jsonArray
	jsonObject
)

// jsonMember is one name/value pair of an object, in document order.
type jsonMember struct {
	name  string
	value *jsonValue
}

// jsonValue is a parsed Gson JsonElement.
type jsonValue struct {
	kind    jsonKind
	text    string // string value, number literal, or "true"/"false"
	items   []*jsonValue
	members []jsonMember
}

// get returns the member named name, or nil. Like Gson's JsonObject (a LinkedTreeMap), the last of
// duplicate names wins.
func (v *jsonValue) get(name string) *jsonValue {
	var found *jsonValue
	for _, m := range v.members {
		if m.name == name {
			found = m.value
		}
	}
	return found
}

// String renders the element as Gson's JsonElement.toString does: compact JSON, numbers as written.
func (v *jsonValue) String() string {
	var b strings.Builder
	v.write(&b)
	return b.String()
}

func (v *jsonValue) write(b *strings.Builder) {
	switch v.kind {
	case jsonNull:
		b.WriteString("null")
	case jsonString:
		writeGsonString(b, v.text)
	case jsonNumber, jsonBool:
		b.WriteString(v.text)
	case jsonArray:
		b.WriteByte('[')
		for i, it := range v.items {
			if i > 0 {
				b.WriteByte(',')
			}
			it.write(b)
		}
		b.WriteByte(']')
	case jsonObject:
		b.WriteByte('{')
		seen := map[string]bool{}
		first := true
		// Gson keeps one entry per name, at the position of its first insertion, with the last value.
		for _, m := range v.members {
			if seen[m.name] {
				continue
			}
			seen[m.name] = true
			if !first {
				b.WriteByte(',')
			}
			first = false
			writeGsonString(b, m.name)
			b.WriteByte(':')
			v.get(m.name).write(b)
		}
		b.WriteByte('}')
	}
}

// writeGsonString quotes s like Gson's JsonWriter with htmlSafe=false.
func writeGsonString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\f':
			b.WriteString(`\f`)
		case '\u2028', '\u2029':
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// gsonSyntaxError is Gson's JsonSyntaxException (including a wrapped MalformedJsonException).
type gsonSyntaxError struct{ msg string }

func (e *gsonSyntaxError) Error() string { return e.msg }

// gsonNestingLimit is JsonReader's default nesting limit (Gson 2.11+).
const gsonNestingLimit = 255

// parseGsonLenient parses s as Gson's JsonParser.parseString does. Whitespace-only input yields a
// JSON null (Gson returns JsonNull.INSTANCE at end of input). After the first value, anything but
// whitespace and comments is "Did not consume the entire document." (Gson skips that check when the
// value is JsonNull).
func parseGsonLenient(s string) (*jsonValue, error) {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD") // Java's UTF-8 decoder replaces malformed input
	}
	p := &gsonParser{s: s, line: 1}
	p.consumeNonExecutePrefix()
	if _, ok := p.nextNonWhitespace(); !ok {
		if p.err != nil {
			return nil, p.err
		}
		return &jsonValue{kind: jsonNull}, nil
	}
	p.pos-- // unread
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if v.kind == jsonNull {
		return v, nil
	}
	if _, more := p.nextNonWhitespace(); more {
		return nil, &gsonSyntaxError{"Did not consume the entire document."}
	}
	if p.err != nil {
		return nil, p.err
	}
	return v, nil
}

type gsonParser struct {
	s         string
	pos       int
	line      int
	lineStart int
	err       error // a syntax error found while skipping whitespace (unterminated comment)
}

func (p *gsonParser) syntaxError(msg string) error {
	return &gsonSyntaxError{fmt.Sprintf("com.google.gson.stream.MalformedJsonException: %s at line %d column %d",
		msg, p.line, p.pos-p.lineStart+1)}
}

// consumeNonExecutePrefix drops the ")]}'\n" prefix that lenient Gson tolerates at the start.
func (p *gsonParser) consumeNonExecutePrefix() {
	save := *p
	if _, ok := p.nextNonWhitespace(); !ok {
		*p = save
		return
	}
	p.pos--
	if strings.HasPrefix(p.s[p.pos:], ")]}'\n") {
		p.pos += 5
		p.line++
		p.lineStart = p.pos
		return
	}
	*p = save
}

// nextNonWhitespace returns the next byte that is not whitespace or part of a comment, and
// advances past it. Gson's whitespace is space, \t, \r and \n only.
func (p *gsonParser) nextNonWhitespace() (byte, bool) {
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '\n':
			p.line++
			p.lineStart = p.pos
			continue
		case ' ', '\r', '\t':
			continue
		case '/':
			if p.pos < len(p.s) && p.s[p.pos] == '*' {
				end := strings.Index(p.s[p.pos+1:], "*/")
				if end < 0 {
					p.err = p.syntaxError("Unterminated comment")
					p.pos = len(p.s)
					return 0, false
				}
				p.countLines(p.s[p.pos : p.pos+1+end+2])
				p.pos += 1 + end + 2
				continue
			}
			if p.pos < len(p.s) && p.s[p.pos] == '/' {
				p.skipToEndOfLine()
				continue
			}
			return c, true
		case '#':
			p.skipToEndOfLine()
			continue
		}
		return c, true
	}
	return 0, false
}

func (p *gsonParser) countLines(s string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			p.line++
			p.lineStart = p.pos + i + 1
		}
	}
}

func (p *gsonParser) skipToEndOfLine() {
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		if c == '\n' {
			p.line++
			p.lineStart = p.pos
			return
		}
		if c == '\r' {
			return
		}
	}
}

// isLiteral reports whether c may be part of an unquoted name or value (Gson JsonReader.isLiteral).
func isLiteral(c byte) bool {
	switch c {
	case '/', '\\', ';', '#', '=', '{', '}', '[', ']', ':', ',', ' ', '\t', '\f', '\r', '\n':
		return false
	}
	return true
}

func (p *gsonParser) value(depth int) (*jsonValue, error) {
	c, ok := p.nextNonWhitespace()
	if !ok {
		if p.err != nil {
			return nil, p.err
		}
		return nil, &gsonSyntaxError{"java.io.EOFException: End of input at line " + strconv.Itoa(p.line) +
			" column " + strconv.Itoa(p.pos-p.lineStart+1)}
	}
	switch c {
	case '{':
		if depth >= gsonNestingLimit {
			return nil, p.syntaxError("Nesting limit " + strconv.Itoa(gsonNestingLimit) + " reached")
		}
		return p.object(depth + 1)
	case '[':
		if depth >= gsonNestingLimit {
			return nil, p.syntaxError("Nesting limit " + strconv.Itoa(gsonNestingLimit) + " reached")
		}
		return p.array(depth + 1)
	case '"', '\'':
		s, err := p.quoted(c)
		if err != nil {
			return nil, err
		}
		return &jsonValue{kind: jsonString, text: s}, nil
	}
	p.pos--
	if !isLiteral(c) {
		return nil, p.syntaxError("Expected value")
	}
	lit := p.literal()
	if k, ok := keyword(lit); ok {
		return k, nil
	}
	if isGsonNumber(lit) {
		return &jsonValue{kind: jsonNumber, text: lit}, nil
	}
	return &jsonValue{kind: jsonString, text: lit}, nil
}

// keyword recognises true, false and null; lenient Gson accepts each letter in either case.
func keyword(lit string) (*jsonValue, bool) {
	switch strings.ToLower(lit) {
	case "true":
		return &jsonValue{kind: jsonBool, text: "true"}, true
	case "false":
		return &jsonValue{kind: jsonBool, text: "false"}, true
	case "null":
		return &jsonValue{kind: jsonNull}, true
	}
	return nil, false
}

// isGsonNumber reports whether lit is a number for JsonReader.peekNumber: JSON number syntax, and
// no leading zero before further digits (Gson reads "01" as an unquoted string).
func isGsonNumber(lit string) bool {
	i := 0
	if i < len(lit) && lit[i] == '-' {
		i++
	}
	start := i
	for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
		i++
	}
	if i == start || (lit[start] == '0' && i-start > 1) {
		return false
	}
	if i < len(lit) && lit[i] == '.' {
		i++
		d := i
		for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			i++
		}
		d := i
		for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(lit)
}

func (p *gsonParser) literal() string {
	start := p.pos
	for p.pos < len(p.s) && isLiteral(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// quoted reads a string up to the closing quote q; the opening quote has been consumed.
func (p *gsonParser) quoted(q byte) (string, error) {
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case q:
			return b.String(), nil
		case '\n':
			p.line++
			p.lineStart = p.pos
			b.WriteByte(c)
		case '\\':
			if p.pos >= len(p.s) {
				return "", p.syntaxError("Unterminated escape sequence")
			}
			e := p.s[p.pos]
			p.pos++
			switch e {
			case 'u':
				if p.pos+4 > len(p.s) {
					return "", p.syntaxError("Unterminated escape sequence")
				}
				n, err := strconv.ParseUint(p.s[p.pos:p.pos+4], 16, 16)
				if err != nil {
					return "", p.syntaxError("Malformed Unicode escape \\u" + p.s[p.pos:p.pos+4])
				}
				p.pos += 4
				r := rune(n)
				// Join a UTF-16 surrogate pair written as two escapes.
				if r >= 0xD800 && r < 0xDC00 && strings.HasPrefix(p.s[p.pos:], `\u`) && p.pos+6 <= len(p.s) {
					if m, err := strconv.ParseUint(p.s[p.pos+2:p.pos+6], 16, 16); err == nil && m >= 0xDC00 && m < 0xE000 {
						r = (r-0xD800)<<10 + (rune(m) - 0xDC00) + 0x10000
						p.pos += 6
					}
				}
				b.WriteRune(r)
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 'f':
				b.WriteByte('\f')
			case '\n':
				p.line++
				p.lineStart = p.pos
				b.WriteByte('\n')
			case '\'', '"', '\\', '/':
				b.WriteByte(e)
			default:
				return "", p.syntaxError("Invalid escape sequence")
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", p.syntaxError("Unterminated string")
}

func (p *gsonParser) array(depth int) (*jsonValue, error) {
	arr := &jsonValue{kind: jsonArray}
	for {
		c, ok := p.nextNonWhitespace()
		if !ok {
			return nil, p.eofOr("Unterminated array")
		}
		switch c {
		case ']':
			if len(arr.items) == 0 {
				return arr, nil
			}
			// "[1,]": lenient Gson reads the empty slot as null, then the end.
			arr.items = append(arr.items, &jsonValue{kind: jsonNull})
			return arr, nil
		case ',', ';':
			// A 0-length element means null.
			arr.items = append(arr.items, &jsonValue{kind: jsonNull})
			continue
		}
		p.pos--
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		arr.items = append(arr.items, v)
		c, ok = p.nextNonWhitespace()
		if !ok {
			return nil, p.eofOr("Unterminated array")
		}
		switch c {
		case ']':
			return arr, nil
		case ',', ';':
			// The next element follows; "[1,]" reaches the "]" case above and gains a null.
		default:
			p.pos--
			return nil, p.syntaxError("Unterminated array")
		}
	}
}

func (p *gsonParser) eofOr(msg string) error {
	if p.err != nil {
		return p.err
	}
	return p.syntaxError(msg)
}

func (p *gsonParser) object(depth int) (*jsonValue, error) {
	obj := &jsonValue{kind: jsonObject}
	for first := true; ; first = false {
		c, ok := p.nextNonWhitespace()
		if !ok {
			return nil, p.eofOr("Unterminated object")
		}
		var name string
		switch c {
		case '}':
			if first {
				return obj, nil
			}
			return nil, p.syntaxError("Expected name")
		case '"', '\'':
			n, err := p.quoted(c)
			if err != nil {
				return nil, err
			}
			name = n
		default:
			p.pos--
			if !isLiteral(c) {
				return nil, p.syntaxError("Expected name")
			}
			name = p.literal()
		}
		c, ok = p.nextNonWhitespace()
		if !ok {
			return nil, p.eofOr("Unterminated object")
		}
		switch c {
		case ':':
		case '=':
			if p.pos < len(p.s) && p.s[p.pos] == '>' {
				p.pos++
			}
		default:
			p.pos--
			return nil, p.syntaxError("Expected ':'")
		}
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		obj.members = append(obj.members, jsonMember{name: name, value: v})
		c, ok = p.nextNonWhitespace()
		if !ok {
			return nil, p.eofOr("Unterminated object")
		}
		switch c {
		case '}':
			return obj, nil
		case ',', ';':
		default:
			p.pos--
			return nil, p.syntaxError("Unterminated object")
		}
	}
}
