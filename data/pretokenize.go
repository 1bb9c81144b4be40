package data

import (
	"unicode"
	"unicode/utf8"
)

// MaxChunkBytes is the longest chunk the pre-tokeniser produces; longer runs
// are cut (at a character boundary) into several chunks. It bounds the
// length of every token and the cost of encoding one chunk.
const MaxChunkBytes = 128

// charClass is the pre-tokenisation class of one character.
type charClass uint8

const (
	classSpace   charClass = iota // unicode.IsSpace
	classLetter                   // unicode.IsLetter or unicode.IsMark
	classDigit                    // unicode.IsNumber
	classOther                    // any other valid character
	classInvalid                  // a byte that is not part of valid UTF-8
)

// asciiClass caches the class of every ASCII byte.
var asciiClass [utf8.RuneSelf]charClass

func init() {
	for b := range utf8.RuneSelf {
		asciiClass[b] = classOfRune(rune(b))
	}
}

func classOfRune(r rune) charClass {
	switch {
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsLetter(r), unicode.IsMark(r):
		return classLetter
	case unicode.IsNumber(r):
		return classDigit
	default:
		return classOther
	}
}

// classAt returns the class and byte length of the character at s[i].
// Each byte of invalid UTF-8 is a character of its own in classInvalid.
func classAt(s string, i int) (charClass, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return asciiClass[b], 1
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return classInvalid, 1
	}
	return classOfRune(r), size
}

// runEnd returns the end of the run of class c that starts at i, stopping
// early so that s[start:end] is at most MaxChunkBytes long (but always
// taking at least the character at i).
func runEnd(s string, start, i int, c charClass) int {
	if c == classInvalid {
		return i + 1 // every invalid byte is a chunk of its own
	}
	for i < len(s) {
		c2, size := classAt(s, i)
		if c2 != c || i > start && i+size-start > MaxChunkBytes {
			break
		}
		i += size
	}
	return i
}

// splitChunks calls fn with each pre-tokenisation chunk of s, in order; the
// chunks concatenate to s exactly. The rules, applied left to right:
//
//   - A run of white space is a chunk, except that when it ends in an ASCII
//     space (' ') and more text follows, that last space is left to start
//     the next chunk.
//   - Otherwise a chunk is an optional single leading ' ' followed by a run
//     of letters (including combining marks), or of digits, or of other
//     non-space characters.
//   - A byte that is not valid UTF-8 is a chunk of its own (with the
//     optional leading space).
//   - Any run is cut so that no chunk is longer than MaxChunkBytes bytes.
//
// BPE merges never cross chunk boundaries, so for example " the" and "the,"
// give the chunks " the" and "the" + ",".
func splitChunks(s string, fn func(chunk string)) {
	i := 0
	for i < len(s) {
		c, _ := classAt(s, i)
		if c == classSpace {
			j := i
			for j < len(s) {
				c2, size := classAt(s, j)
				if c2 != classSpace {
					break
				}
				j += size
			}
			end := j
			if j < len(s) && s[j-1] == ' ' {
				end = j - 1 // leave the space to prefix the next chunk
			}
			for i < end {
				k := runEnd(s[:end], i, i, classSpace)
				fn(s[i:k])
				i = k
			}
			if i == len(s) {
				return
			}
		}
		// Here s[i] starts a non-space run, or is a single ' ' before one.
		start := i
		if s[i] == ' ' {
			i++
		}
		c, _ = classAt(s, i)
		i = runEnd(s, start, i, c)
		fn(s[start:i])
	}
}
