package data

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// chunkRegexp is chunkPattern compiled by Go's regexp (its \p classes are Go's, as splitChunks').
var chunkRegexp = regexp.MustCompile(chunkPattern)

// goldenTokenizer has two merges: "a"+"b" and "ab"+"c".
func goldenTokenizer(t *testing.T) *Tokenizer {
	t.Helper()
	tok, err := newTokenizer([][2]int32{{byteBase + 'a', byteBase + 'b'}, {baseVocab, byteBase + 'c'}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenizerHFGolden pins the Hugging Face file mqa writes (run with -update after a
// deliberate change, and check the new file with tokenizers: scripts/hf_check.sh).
func TestTokenizerHFGolden(t *testing.T) {
	got, err := goldenTokenizer(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "tokenizer.golden.json")
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalJSON differs from %s:\n%s", path, got)
	}
	var f struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Type   string         `json:"type"`
			Vocab  map[string]int `json:"vocab"`
			Merges [][2]string    `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(got, &f); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"BPE model", f.Model.Type == "BPE"},
		{"vocab size", len(f.Model.Vocab) == 261},
		{"specials", f.Model.Vocab["<pad>"] == 0 && f.Model.Vocab["<s>"] == 1 && f.Model.Vocab["</s>"] == 2},
		{"byte tokens", f.Model.Vocab["a"] == 3+'a' && f.Model.Vocab["Ġ"] == 3+' ' && f.Model.Vocab["Ċ"] == 3+'\n' && f.Model.Vocab["Ã"] == 3+0xC3},
		{"merged tokens", f.Model.Vocab["ab"] == 259 && f.Model.Vocab["abc"] == 260},
		{"merges", slices.Equal(f.Model.Merges, [][2]string{{"a", "b"}, {"ab", "c"}})},
		{"added tokens", len(f.AddedTokens) == 3 && f.AddedTokens[2].Content == "</s>" && f.AddedTokens[2].ID == 2 && f.AddedTokens[2].Special},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: wrong in %s", c.name, got)
		}
	}
}

func TestByteChars(t *testing.T) {
	seen := map[rune]bool{}
	for b, r := range byteChars {
		if seen[r] || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			t.Errorf("byte %#x maps to %U: repeated, white space or not printable", b, r)
		}
		seen[r] = true
	}
	for b, want := range map[byte]rune{'!': '!', ' ': 'Ġ', '\n': 'Ċ', 0: 'Ā', 0x7F: 'ġ', 0xA0: 'ł', 0xAD: 'Ń', 0xFF: 'ÿ'} {
		if byteChars[b] != want {
			t.Errorf("byte %#x maps to %q, want %q (GPT-2's table)", b, byteChars[b], want)
		}
	}
}

// TestWhiteSpaceClass checks that the spelled-out class is exactly unicode.IsSpace.
func TestWhiteSpaceClass(t *testing.T) {
	re := regexp.MustCompile(`^[` + whiteSpaceClass + `]$`)
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		if got := re.MatchString(string(r)); got != unicode.IsSpace(r) {
			t.Fatalf("%U: class says %v, unicode.IsSpace %v", r, got, unicode.IsSpace(r))
		}
	}
}

// hfChunks splits s the way the written pre-tokeniser does: the chunk pattern's matches
// and the gaps between them are pieces, and each piece is cut into runs of at most
// MaxChunkBytes bytes that end at a character boundary (what cutPattern's greedy
// repetition with its look-ahead finds; Go's regexp has no look-ahead to run it).
func hfChunks(re *regexp.Regexp, s string) []string {
	var pieces []string
	last := 0
	for _, m := range re.FindAllStringIndex(s, -1) {
		if m[0] > last {
			pieces = append(pieces, s[last:m[0]])
		}
		pieces = append(pieces, s[m[0]:m[1]])
		last = m[1]
	}
	if last < len(s) {
		pieces = append(pieces, s[last:])
	}
	var out []string
	for _, p := range pieces {
		for len(p) > 0 {
			n := min(len(p), MaxChunkBytes)
			for n < len(p) && !utf8.RuneStart(p[n]) {
				n--
			}
			out = append(out, p[:n])
			p = p[n:]
		}
	}
	return out
}

// TestChunkPatternMatchesSplitChunks checks the written pre-tokeniser's pattern against
// splitChunks on the table cases, long runs, every line of the embedded LM test split, and
// random strings over a mixed alphabet.
func TestChunkPatternMatchesSplitChunks(t *testing.T) {
	inputs := []string{
		"", "Hello, world!", "a  b", "a\n\nb", "a \n b", "end  ", " lead", "it's 2024.", "naïve café",
		"e\u0301t\u00e9", "--> ...", "日本語 テキスト", "a\u00a0b", "\t", " \t x", "x \u3000 y", "1.5e-3 ½ Ⅻ",
		strings.Repeat("a", 1000), " " + strings.Repeat("é", 300), strings.Repeat(" ", 500) + "x",
		strings.Repeat("\n", 300), strings.Repeat("7", 129), strings.Repeat("日", 100), strings.Repeat("-", 300) + " x",
	}
	lines, err := LoadText("", "lm-en", "test")
	if err != nil {
		t.Fatal(err)
	}
	inputs = append(inputs, lines...)
	alphabet := []rune("ab Z9½,.-\n\t\u00a0\u3000é\u0301日😀 ")
	rng := uint64(1)
	for range 2000 {
		var sb strings.Builder
		rng = rng*6364136223846793005 + 1442695040888963407
		n := int(rng>>33) % 300
		for range n {
			rng = rng*6364136223846793005 + 1442695040888963407
			sb.WriteRune(alphabet[int(rng>>33)%len(alphabet)])
		}
		inputs = append(inputs, sb.String())
	}
	for _, s := range inputs {
		if got, want := hfChunks(chunkRegexp, s), chunksOf(s); !slices.Equal(got, want) {
			t.Fatalf("pre-tokenising %q: the written pattern gives %q, splitChunks %q", s, got, want)
		}
	}
}

func TestTokenizerHFRoundTrip(t *testing.T) {
	tok := sampleTokenizer(t)
	js, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseTokenizer(js, "hf.json")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.merges, tok.merges) {
		t.Fatal("merges changed in a round trip")
	}
	// The older format still loads, and is written in the new one.
	old := `{"format":"mqa-bpe","version":1,"vocab_size":261,"merges":[[100,101],[259,102]]}`
	otok, err := ParseTokenizer([]byte(old), "old.json")
	if err != nil {
		t.Fatal(err)
	}
	js, err = otok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseTokenizer(js, "new.json")
	if err != nil || !slices.Equal(again.merges, otok.merges) {
		t.Fatalf("old tokenizer re-read from the new format: %v", err)
	}
	if ids := again.Encode("abc"); !slices.Equal(ids, []int{260}) {
		t.Fatalf("Encode(abc) = %v, want [260]", ids)
	}
}

func TestTokenizerHFDuplicateBytes(t *testing.T) {
	// "ab"+"c" and "a"+"bc" both make "abc".
	tok, err := newTokenizer([][2]int32{{byteBase + 'a', byteBase + 'b'}, {baseVocab, byteBase + 'c'},
		{byteBase + 'b', byteBase + 'c'}, {byteBase + 'a', baseVocab + 2}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.MarshalJSON(); err == nil || !strings.Contains(err.Error(), "token 262 has the same bytes") {
		t.Fatalf("error %v, want one naming token 262", err)
	}
}

func TestParseHFTokenizerErrors(t *testing.T) {
	good, err := goldenTokenizer(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("golden file lacks %q", old)
		}
		return strings.Replace(string(good), old, new, 1)
	}
	tests := []struct{ name, in, want string }{
		{"not BPE", edit(`"type": "BPE"`, `"type": "WordPiece"`), `model type "WordPiece"`},
		{"byte fallback", edit(`"byte_fallback": false`, `"byte_fallback": true`), "byte_fallback"},
		{"normalizer", edit(`"normalizer": null`, `"normalizer": {"type":"NFC"}`), "normalizer"},
		{"pre-tokenizer", edit(`"add_prefix_space":false`, `"add_prefix_space":true`), "pre_tokenizer differs"},
		{"byte id", edit(`"a": 100`, `"a": 99`), `"a" must have id 100`},
		{"special", edit(`"<s>": 1`, `"<S>": 1`), `"<s>" must have id 1`},
		{"merge order", edit(`["a","b"],`+"\n      "+`["ab","c"]`, `["ab","c"],`+"\n      "+`["a","b"]`), "merge 0"},
		{"merge string", edit(`["a","b"]`, `"a b"`), ""},
		{"bad merge", edit(`["a","b"]`, `["a","b","c"]`), "3 strings"},
		{"vocab size", edit(`"abc": 260`, `"abc": 260, "zz": 261`), "vocab has 262 entries"},
		{"no model", `{"model": null}`, `no "model"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokenizer([]byte(tc.in), "t.json")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("%v, want the older merge spelling accepted", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "t.json: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want t.json: ...%s...", err, tc.want)
			}
		})
	}
}
