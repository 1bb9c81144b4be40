package bleu

import (
	"strings"
	"unicode/utf8"
)

// Tokenize13a tokenises one segment the way sacreBLEU's "13a" tokenizer
// (a port of the mteval-v13a.pl script used by WMT) does.
//
// The steps, in order, are: remove every "<skipped>"; join lines broken
// with "-\n"; turn the remaining "\n" into spaces; unescape &quot;, &amp;,
// &lt; and &gt; (in that order, one pass each); surround most ASCII
// punctuation with spaces; split '.' and ',' off unless they sit between
// digits; split '-' off after a digit; finally collapse runs of whitespace
// (as Python's str.split understands it) into single spaces and trim both
// ends.
//
// Note that sacreBLEU's BLEU strips trailing whitespace from a segment
// before tokenising it; [CorpusBLEU] does that too, Tokenize13a does not.
func Tokenize13a(line string) string {
	line = strings.ReplaceAll(line, "<skipped>", "")
	line = strings.ReplaceAll(line, "-\n", "")
	line = strings.ReplaceAll(line, "\n", " ")
	if strings.Contains(line, "&") {
		line = strings.ReplaceAll(line, "&quot;", `"`)
		line = strings.ReplaceAll(line, "&amp;", "&")
		line = strings.ReplaceAll(line, "&lt;", "<")
		line = strings.ReplaceAll(line, "&gt;", ">")
	}
	return tokenizeRegexp(" " + line + " ")
}

// isPunct13a reports whether b belongs to the first 13a character class
// [\{-\~\[-\` -\&\(-\+\:-\@\/]: all printable ASCII punctuation (and the
// space) except the apostrophe, comma, hyphen and full stop.
func isPunct13a(b byte) bool {
	switch {
	case b >= '{' && b <= '~',
		b >= '[' && b <= '`',
		b >= ' ' && b <= '&',
		b >= '(' && b <= '+',
		b >= ':' && b <= '@',
		b == '/':
		return true
	}
	return false
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func isDotComma(b byte) bool { return b == '.' || b == ',' }

// tokenizeRegexp applies the four substitutions of sacreBLEU's
// TokenizerRegexp. Each of Python's re.sub calls scans left to right and
// replaces non-overlapping matches; the loops below do the same. All the
// patterns only name ASCII characters, so working on bytes gives the same
// result as Python's code-point matching: a multi-byte character never
// matches an ASCII class, and a negated class such as [^0-9] matched by the
// last byte of a character puts the inserted space after the whole
// character, exactly where Python puts it.
func tokenizeRegexp(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)

	// 1. ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isPunct13a(c) {
			b.WriteByte(' ')
			b.WriteByte(c)
			b.WriteByte(' ')
		} else {
			b.WriteByte(c)
		}
	}
	s = b.String()
	b.Reset()

	// 2. ([^0-9])([\.,]) -> "\1 \2 "
	for i := 0; i < len(s); i++ {
		if i+1 < len(s) && !isDigit(s[i]) && isDotComma(s[i+1]) {
			b.WriteByte(s[i])
			b.WriteByte(' ')
			b.WriteByte(s[i+1])
			b.WriteByte(' ')
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	s = b.String()
	b.Reset()

	// 3. ([\.,])([^0-9]) -> " \1 \2"
	for i := 0; i < len(s); i++ {
		if i+1 < len(s) && isDotComma(s[i]) && !isDigit(s[i+1]) {
			b.WriteByte(' ')
			b.WriteByte(s[i])
			b.WriteByte(' ')
			b.WriteByte(s[i+1])
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	s = b.String()
	b.Reset()

	// 4. ([0-9])(-) -> "\1 \2 "
	for i := 0; i < len(s); i++ {
		if i+1 < len(s) && isDigit(s[i]) && s[i+1] == '-' {
			b.WriteByte(s[i])
			b.WriteByte(' ')
			b.WriteByte('-')
			b.WriteByte(' ')
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	s = b.String()

	// ' '.join(line.split())
	return strings.Join(pyFields(s), " ")
}

// isPySpace reports whether r is whitespace for Python's str.isspace (and
// so for str.split() and str.rstrip() without arguments): general category
// Zs, or bidirectional class WS, B or S.
func isPySpace(r rune) bool {
	switch {
	case r >= 0x09 && r <= 0x0D, r >= 0x1C && r <= 0x20:
		return true
	case r < 0x85:
		return false
	case r == 0x85, r == 0xA0, r == 0x1680,
		r >= 0x2000 && r <= 0x200A,
		r == 0x2028, r == 0x2029, r == 0x202F, r == 0x205F, r == 0x3000:
		return true
	}
	return false
}

// pyFields splits s like Python's str.split() with no arguments. Invalid
// UTF-8 bytes are never whitespace and are kept as they are.
func pyFields(s string) []string {
	var out []string
	start := -1
	for i := 0; i < len(s); {
		r, w := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, w = utf8.DecodeRuneInString(s[i:])
		}
		if isPySpace(r) {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += w
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// pyRStrip removes trailing whitespace like Python's str.rstrip().
func pyRStrip(s string) string {
	for len(s) > 0 {
		r, w := utf8.DecodeLastRuneInString(s)
		if r == utf8.RuneError && w == 1 {
			return s
		}
		if !isPySpace(r) {
			return s
		}
		s = s[:len(s)-w]
	}
	return s
}
