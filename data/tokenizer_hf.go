package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// The Hugging Face tokenizers format ("tokenizer.json") is the one mqa writes. The
// tokenizer is written as a byte-level BPE model whose vocabulary and merges reproduce
// Encode exactly:
//
//   - the specials are "<pad>", "<s>" and "</s>" (ids 0, 1, 2); byte b is the character
//     that GPT-2's byte-to-unicode table gives it (id 3+b); merge i joins the strings of its
//     two tokens into token 259+i;
//   - the pre-tokeniser is a sequence of three steps: a Split whose regular expression
//     finds the letter, digit and other runs of splitChunks (each with its optional leading
//     ASCII space; the white space between them becomes pieces of its own), ByteLevel
//     without its own regex (it only maps bytes to characters), and a Split that cuts every
//     piece into runs of at most MaxChunkBytes bytes that end at a character boundary;
//   - no normaliser and no post-processor (Encode adds no BOS or EOS).
//
// The one difference from Encode is Unicode's version: Go's tables decide letters, marks
// and digits for mqa, Oniguruma's (the regular-expression engine of tokenizers) for
// Hugging Face, so a character new in one version only can split differently.

// Special token strings, by id.
var specialTokens = [numSpecial]string{"<pad>", "<s>", "</s>"}

// SpecialTokens returns the strings of the special tokens PadID, BOSID and EOSID.
func SpecialTokens() (pad, bos, eos string) {
	return specialTokens[PadID], specialTokens[BOSID], specialTokens[EOSID]
}

// byteChars maps each byte to its character in GPT-2's byte-level alphabet: the printable
// bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' stand for themselves, the other 68 bytes, in
// order, for U+0100 onwards.
var byteChars = func() (m [256]rune) {
	next := rune(256)
	for b := range 256 {
		switch {
		case b >= '!' && b <= '~', b >= 0xA1 && b <= 0xAC, b >= 0xAE:
			m[b] = rune(b)
		default:
			m[b] = next
			next++
		}
	}
	return m
}()

// hfTokenString is token bytes written in the byte-level alphabet.
func hfTokenString(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		sb.WriteRune(byteChars[c])
	}
	return sb.String()
}

// whiteSpaceClass lists unicode.IsSpace (Unicode's White_Space property) as a regex class
// body, spelled out so that it does not depend on what a regex engine calls \s.
const whiteSpaceClass = `\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`

// chunkPattern matches the non-space chunks of splitChunks before their length cut: an
// optional ASCII space, then a run of letters (with marks), of digits, or of other
// characters. What lies between matches is white space, which splitChunks keeps whole
// except for a last ASCII space before more text, which begins the next match.
const chunkPattern = ` ?[\p{L}\p{M}]+| ?\p{N}+| ?[^` + whiteSpaceClass + `\p{L}\p{M}\p{N}]+`

// cutPattern cuts a piece written in the byte-level alphabet into runs of at most
// MaxChunkBytes bytes that end before a character (not before a UTF-8 continuation byte).
var cutPattern = func() string {
	var cont strings.Builder
	for b := 0x80; b < 0xC0; {
		e := b // the run of bytes whose characters are consecutive
		for e+1 < 0xC0 && byteChars[e+1] == byteChars[e]+1 {
			e++
		}
		fmt.Fprintf(&cont, `\x{%X}`, byteChars[b])
		if e > b {
			fmt.Fprintf(&cont, `-\x{%X}`, byteChars[e])
		}
		b = e + 1
	}
	return fmt.Sprintf(`[\s\S]{1,%d}(?![%s])`, MaxChunkBytes, cont.String())
}()

// hfPattern is a Split pre-tokeniser's pattern.
type hfPattern struct {
	Regex string `json:"Regex"`
}

// hfPreTokenizer is one pre-tokeniser (Split or ByteLevel) or a Sequence of them.
type hfPreTokenizer struct {
	Type           string           `json:"type"`
	Pattern        *hfPattern       `json:"pattern,omitempty"`
	Behavior       string           `json:"behavior,omitempty"`
	Invert         *bool            `json:"invert,omitempty"`
	AddPrefixSpace *bool            `json:"add_prefix_space,omitempty"`
	TrimOffsets    *bool            `json:"trim_offsets,omitempty"`
	UseRegex       *bool            `json:"use_regex,omitempty"`
	PreTokenizers  []hfPreTokenizer `json:"pretokenizers,omitempty"`
}

// hfAddedToken is an entry of "added_tokens".
type hfAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

func ptr[T any](v T) *T { return &v }

// hfPreTokenizers is the pre-tokeniser mqa writes (see the comment at the top).
func hfPreTokenizers() hfPreTokenizer {
	split := func(re string) hfPreTokenizer {
		return hfPreTokenizer{Type: "Split", Pattern: &hfPattern{Regex: re}, Behavior: "Isolated", Invert: ptr(false)}
	}
	byteLevel := hfPreTokenizer{Type: "ByteLevel", AddPrefixSpace: ptr(false), TrimOffsets: ptr(false), UseRegex: ptr(false)}
	return hfPreTokenizer{Type: "Sequence", PreTokenizers: []hfPreTokenizer{split(chunkPattern), byteLevel, split(cutPattern)}}
}

// hfDecoder turns byte-level characters back into bytes.
var hfDecoder = hfPreTokenizer{Type: "ByteLevel", AddPrefixSpace: ptr(false), TrimOffsets: ptr(false), UseRegex: ptr(false)}

// hfTokenStrings returns every token's string in the byte-level alphabet, by id, or an
// error when two tokens have the same string (which a Hugging Face vocabulary, a map from
// strings to ids, cannot hold).
func (t *Tokenizer) hfTokenStrings() ([]string, error) {
	strs := make([]string, t.VocabSize())
	seen := make(map[string]int, len(strs))
	for id := range strs {
		s := specialTokens[min(id, numSpecial-1)]
		if id >= numSpecial {
			s = hfTokenString(t.piece(id))
		}
		if prev, dup := seen[s]; dup {
			return nil, fmt.Errorf("token %d has the same bytes %q as token %d; the Hugging Face format cannot hold two tokens with one string (two merge orders that build the same bytes: rare, and not seen on the embedded corpora)", id, t.piece(id), prev)
		}
		seen[s] = id
		strs[id] = s
	}
	return strs, nil
}

// MarshalJSON encodes the tokenizer in Hugging Face's tokenizers format (see the comment
// at the top of this file). It fails only for a tokenizer that has two tokens with the
// same bytes.
func (t *Tokenizer) MarshalJSON() ([]byte, error) {
	strs, err := t.hfTokenStrings()
	if err != nil {
		return nil, fmt.Errorf("data: tokenizer to JSON: %w", err)
	}
	added := make([]hfAddedToken, numSpecial)
	for id := range added {
		added[id] = hfAddedToken{ID: id, Content: specialTokens[id], Special: true}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	put := func(key string, v any) {
		fmt.Fprintf(&buf, "  %q: ", key)
		_ = enc.Encode(v) // the values are plain structs, strings and ints: encoding cannot fail
		buf.Truncate(buf.Len() - 1)
		buf.WriteString(",\n")
	}
	buf.WriteString("{\n")
	put("version", "1.0")
	put("truncation", nil)
	put("padding", nil)
	put("added_tokens", added)
	put("normalizer", nil)
	put("pre_tokenizer", hfPreTokenizers())
	put("post_processor", nil)
	put("decoder", hfDecoder)
	buf.WriteString(`  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,` + "\n")
	buf.WriteString(`    "vocab": {`)
	for id, s := range strs {
		if id > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n      ")
		_ = enc.Encode(s)
		buf.Truncate(buf.Len() - 1)
		fmt.Fprintf(&buf, ": %d", id)
	}
	buf.WriteString("\n    },\n    \"merges\": [")
	for i, m := range t.merges {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n      ")
		_ = enc.Encode([2]string{strs[m[0]], strs[m[1]]})
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteString("\n    ]\n  }\n}")
	return buf.Bytes(), nil
}

// hfFile is the part of a Hugging Face tokenizer file that decides how text is encoded.
type hfFile struct {
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        *struct {
		Type                    string            `json:"type"`
		Dropout                 json.RawMessage   `json:"dropout"`
		UnkToken                json.RawMessage   `json:"unk_token"`
		ContinuingSubwordPrefix json.RawMessage   `json:"continuing_subword_prefix"`
		EndOfWordSuffix         json.RawMessage   `json:"end_of_word_suffix"`
		ByteFallback            bool              `json:"byte_fallback"`
		IgnoreMerges            bool              `json:"ignore_merges"`
		Vocab                   map[string]int64  `json:"vocab"`
		Merges                  []json.RawMessage `json:"merges"`
	} `json:"model"`
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// parseHFTokenizer reads a tokenizer in Hugging Face's format. Only the byte-level BPE
// that MarshalJSON writes is accepted: the same pre-tokeniser, no normaliser, the
// specials, bytes and merged tokens at the ids Encode gives them.
func parseHFTokenizer(data []byte) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	m := f.Model
	switch {
	case m == nil:
		return nil, errors.New(`no "model"`)
	case m.Type != "BPE":
		return nil, fmt.Errorf("model type %q, want BPE", m.Type)
	case !isNull(m.Dropout) || !isNull(m.UnkToken) || !isNull(m.ContinuingSubwordPrefix) || !isNull(m.EndOfWordSuffix) || m.ByteFallback || m.IgnoreMerges:
		return nil, errors.New("the BPE model sets dropout, unk_token, a subword prefix or suffix, byte_fallback or ignore_merges, which mqa's byte-level BPE does not have")
	case !isNull(f.Normalizer):
		return nil, errors.New("a normalizer is set; mqa's byte-level BPE has none")
	}
	var got, want any
	if err := json.Unmarshal(f.PreTokenizer, &got); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	ours, _ := json.Marshal(hfPreTokenizers())
	_ = json.Unmarshal(ours, &want)
	if !reflect.DeepEqual(got, want) {
		return nil, errors.New("pre_tokenizer differs from the one mqa writes, so mqa would split text differently")
	}
	n := len(m.Merges)
	if n > MaxMerges {
		return nil, fmt.Errorf("%d merges, more than the limit %d", n, MaxMerges)
	}
	if len(m.Vocab) != baseVocab+n {
		return nil, fmt.Errorf("vocab has %d entries, want %d (259 specials and bytes, and one per merge)", len(m.Vocab), baseVocab+n)
	}
	for id := range baseVocab {
		s := specialTokens[min(id, numSpecial-1)]
		if id >= numSpecial {
			s = string(byteChars[id-byteBase])
		}
		if v, ok := m.Vocab[s]; !ok || v != int64(id) {
			return nil, fmt.Errorf("vocab: %q must have id %d", s, id)
		}
	}
	merges := make([][2]int32, n)
	for i, raw := range m.Merges {
		a, b, err := parseHFMerge(raw)
		if err != nil {
			return nil, fmt.Errorf("merge %d: %w", i, err)
		}
		ids := [3]int64{-1, -1, -1}
		for j, s := range []string{a, b, a + b} {
			if v, ok := m.Vocab[s]; ok {
				ids[j] = v
			}
		}
		if ids[2] != int64(baseVocab+i) {
			return nil, fmt.Errorf("merge %d %q + %q: the vocab gives the joined token id %d, want %d (merge i makes token 259+i)", i, a, b, ids[2], baseVocab+i)
		}
		for j := range 2 {
			if ids[j] < byteBase || ids[j] >= int64(baseVocab+i) {
				return nil, fmt.Errorf("merge %d %q + %q: part %d is not a byte or an earlier merged token", i, a, b, j+1)
			}
			merges[i][j] = int32(ids[j])
		}
	}
	return newTokenizer(merges)
}

// parseHFMerge reads a merge, written ["a", "b"] or, in older files, "a b".
func parseHFMerge(raw json.RawMessage) (a, b string, err error) {
	var pair []string
	if json.Unmarshal(raw, &pair) == nil {
		if len(pair) != 2 {
			return "", "", fmt.Errorf("has %d strings, want 2", len(pair))
		}
		return pair[0], pair[1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "", errors.New(`want ["a", "b"] or "a b"`)
	}
	a, b, ok := strings.Cut(s, " ")
	if !ok || strings.Contains(b, " ") {
		return "", "", fmt.Errorf("%q is not two tokens separated by one space", s)
	}
	return a, b, nil
}
