package data

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// sampleTexts returns a modest mix of all embedded training corpora.
func sampleTexts(tb testing.TB) []string {
	tb.Helper()
	texts, err := loadSampleTexts()
	if err != nil {
		tb.Fatal(err)
	}
	return texts
}

func loadSampleTexts() ([]string, error) {
	docs, err := LoadText("", "lm-en", "train")
	if err != nil {
		return nil, err
	}
	texts := slices.Clone(docs[:1000])
	for _, name := range []string{"bible.en-es", "lohelp.en-de"} {
		pairs, err := LoadTSV("", name, "train")
		if err != nil {
			return nil, err
		}
		for _, p := range pairs[:3000] {
			texts = append(texts, p.Src, p.Tgt)
		}
	}
	return texts, nil
}

// trainSampleTokenizer trains, once, the 2000-token tokenizer on
// sampleTexts that the tests share.
var trainSampleTokenizer = sync.OnceValues(func() (*Tokenizer, error) {
	texts, err := loadSampleTexts()
	if err != nil {
		return nil, err
	}
	return TrainBPE(texts, 2000)
})

func sampleTokenizer(tb testing.TB) *Tokenizer {
	tb.Helper()
	tok, err := trainSampleTokenizer()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// naiveTrain is a slow reference BPE trainer: it recounts all pairs before
// every merge.
func naiveTrain(texts []string, vocabSize int) [][2]int32 {
	freq := map[string]int64{}
	for _, s := range texts {
		splitChunks(s, func(c string) { freq[c]++ })
	}
	type word struct {
		syms []int32
		f    int64
	}
	var words []word
	for c, f := range freq {
		syms := make([]int32, len(c))
		for i := range len(c) {
			syms[i] = byteBase + int32(c[i])
		}
		words = append(words, word{syms, f})
	}
	var merges [][2]int32
	for baseVocab+len(merges) < vocabSize {
		counts := map[uint64]int64{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				counts[pairKey(w.syms[i], w.syms[i+1])] += w.f
			}
		}
		var best uint64
		var bestCount int64
		for k, c := range counts {
			if c > bestCount || c == bestCount && k < best {
				best, bestCount = k, c
			}
		}
		if bestCount == 0 {
			break
		}
		a, b := int32(best>>32), int32(uint32(best))
		id := int32(baseVocab + len(merges))
		merges = append(merges, [2]int32{a, b})
		for i := range words {
			words[i].syms = mergePair(words[i].syms, a, b, id)
		}
	}
	return merges
}

// naiveEncode replays the merges one by one on each chunk.
func naiveEncode(t *Tokenizer, s string) []int {
	var out []int
	splitChunks(s, func(c string) {
		syms := make([]int, len(c))
		for i := range len(c) {
			syms[i] = byteBase + int(c[i])
		}
		for i, m := range t.merges {
			syms = mergePair(syms, int(m[0]), int(m[1]), baseVocab+i)
		}
		out = append(out, syms...)
	})
	return out
}

func TestTrainBPEMatchesNaive(t *testing.T) {
	docs := loadTrainText(t)
	tests := []struct {
		name  string
		texts []string
		vocab int
	}{
		{"lm-en sample", docs[:150], 700},
		{"ties", []string{"aaaa bbbb abab baba", "aaa bb ab ba", "\xff\xff\xfe"}, 300},
		{"repeats", []string{strings.Repeat("a", 40), strings.Repeat("ab", 30), "abc abc abc"}, 320},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := TrainBPE(tc.texts, tc.vocab)
			if err != nil {
				t.Fatal(err)
			}
			want := naiveTrain(tc.texts, tc.vocab)
			if !slices.Equal(tok.merges, want) {
				n := 0
				for n < min(len(want), len(tok.merges)) && tok.merges[n] == want[n] {
					n++
				}
				t.Fatalf("merges differ from the reference at %d (got %d merges, want %d)", n, len(tok.merges), len(want))
			}
			for _, s := range tc.texts {
				if got, want := tok.Encode(s), naiveEncode(tok, s); !slices.Equal(got, want) {
					t.Fatalf("Encode(%.30q) = %v, replaying merges gives %v", s, got, want)
				}
			}
		})
	}
}

func TestTrainBPEDeterministic(t *testing.T) {
	texts := sampleTexts(t)
	a, err := TrainBPE(texts, 1500)
	if err != nil {
		t.Fatal(err)
	}
	b, err := TrainBPE(texts, 1500)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.merges, b.merges) {
		t.Fatal("two trainings on the same texts gave different merges")
	}
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	if !bytes.Equal(ja, jb) {
		t.Fatal("two trainings gave different JSON")
	}
}

func TestTrainBPESizes(t *testing.T) {
	tests := []struct {
		texts     []string
		vocab     int
		wantSize  int
		wantError bool
	}{
		{[]string{"abc"}, 258, 0, true},
		{[]string{"abc"}, -1, 0, true},
		{[]string{"abc"}, 259 + MaxMerges + 1, 0, true},
		{[]string{"abc"}, 259, 259, false},
		{[]string{"abc abc"}, 1000, 259 + 3, false}, // "abc", " abc": ab, abc, " abc"
		{nil, 5000, 259, false},
		{[]string{"a b c"}, 300, 259 + 2, false}, // " b", " c"
	}
	for _, tc := range tests {
		tok, err := TrainBPE(tc.texts, tc.vocab)
		if tc.wantError {
			if err == nil {
				t.Errorf("TrainBPE(%q, %d): no error", tc.texts, tc.vocab)
			}
			continue
		}
		if err != nil {
			t.Errorf("TrainBPE(%q, %d): %v", tc.texts, tc.vocab, err)
			continue
		}
		if tok.VocabSize() != tc.wantSize {
			t.Errorf("TrainBPE(%q, %d).VocabSize() = %d, want %d", tc.texts, tc.vocab, tok.VocabSize(), tc.wantSize)
		}
	}
}

func TestRoundTripRandomBytes(t *testing.T) {
	tok := sampleTokenizer(t)
	r := rand.New(rand.NewPCG(7, 8))
	pieces := []string{"the", " and", "é", "\u00e9t\u00e9", " ", "\n", "\xff", "\xe2\x80", "日本", "123", "...", "\x00"}
	for i := range 3000 {
		var b []byte
		n := r.IntN(200)
		for range n {
			if i%2 == 0 {
				b = append(b, byte(r.UintN(256)))
			} else {
				b = append(b, pieces[r.IntN(len(pieces))]...)
			}
		}
		s := string(b)
		ids := tok.Encode(s)
		for _, id := range ids {
			if id < byteBase || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) produced id %d", s, id)
			}
		}
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
	}
}

func TestRoundTripEmbeddedCorpora(t *testing.T) {
	tok := sampleTokenizer(t)
	check := func(source, s string) {
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Fatalf("%s: round trip changed %.60q to %.60q", source, s, got)
		}
	}
	for _, name := range Corpora() {
		for _, split := range []string{"train", "valid", "test"} {
			source := name + "." + split
			if name == "lm-en" {
				docs, err := LoadText("", name, split)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range docs {
					check(source, d)
				}
				continue
			}
			pairs, err := LoadTSV("", name, split)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pairs {
				check(source, p.Src)
				check(source, p.Tgt)
			}
		}
	}
}

func TestDecode(t *testing.T) {
	tok := sampleTokenizer(t)
	ids := tok.Encode("hello world")
	with := append([]int{BOSID, PadID}, ids...)
	with = append(with, EOSID, -1, tok.VocabSize(), math.MaxInt)
	if got := tok.Decode(with); got != "hello world" {
		t.Errorf("Decode with specials and bad ids = %q", got)
	}
	wantPos := "position " + itoa(len(ids)+3)
	if _, err := tok.DecodeChecked(with); err == nil || !strings.Contains(err.Error(), wantPos) {
		t.Errorf("DecodeChecked error %v, want one about %s", err, wantPos)
	}
	if got, err := tok.DecodeChecked(append([]int{BOSID}, ids...)); err != nil || got != "hello world" {
		t.Errorf("DecodeChecked = %q, %v", got, err)
	}
	if b, ok := tok.TokenBytes(byteBase + 'A'); !ok || string(b) != "A" {
		t.Errorf("TokenBytes(byte A) = %q, %v", b, ok)
	}
	if _, ok := tok.TokenBytes(-1); ok {
		t.Error("TokenBytes(-1) ok")
	}
}

func TestEncodeConcurrent(t *testing.T) {
	tok, err := TrainBPE([]string{"the cat sat on the mat with the hat"}, 300)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				s := strings.Repeat("the cat ", i%7+g)
				if tok.Decode(tok.Encode(s)) != s {
					t.Error("concurrent round trip failed")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestTokenizerJSONRoundTrip(t *testing.T) {
	tok := sampleTokenizer(t)
	path := filepath.Join(t.TempDir(), "tok.json")
	if err := tok.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.merges, tok.merges) || got.VocabSize() != tok.VocabSize() {
		t.Fatal("loaded tokenizer differs")
	}
	text := "It is a truth universally acknowledged, señor."
	if !slices.Equal(got.Encode(text), tok.Encode(text)) {
		t.Fatal("loaded tokenizer encodes differently")
	}
	// The file is in Hugging Face's tokenizers format.
	data, _ := os.ReadFile(path)
	var f struct {
		Model struct {
			Type   string         `json:"type"`
			Vocab  map[string]int `json:"vocab"`
			Merges [][2]string    `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Model.Type != "BPE" || len(f.Model.Vocab) != tok.VocabSize() || len(f.Model.Merges) != tok.NumMerges() {
		t.Fatalf("unexpected file: model %q, %d vocab entries, %d merges", f.Model.Type, len(f.Model.Vocab), len(f.Model.Merges))
	}
	if _, err := LoadTokenizer(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("LoadTokenizer(missing): no error")
	}
}

func TestParseTokenizerErrors(t *testing.T) {
	ok := `{"format":"mqa-bpe","version":1,"vocab_size":261,"merges":[[3,4],[259,5]]}`
	if tok, err := ParseTokenizer([]byte(ok), "ok.json"); err != nil || tok.VocabSize() != 261 {
		t.Fatalf("valid file: %v", err)
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", ``, "bad JSON"},
		{"not json", `hello`, "bad JSON"},
		{"unknown field", `{"format":"mqa-bpe","version":1,"vocab_size":259,"merges":[],"extra":1}`, "unknown field"},
		{"wrong format", `{"format":"gpt2","version":1,"vocab_size":259,"merges":[]}`, `format "gpt2"`},
		{"missing format", `{"version":1,"vocab_size":259,"merges":[]}`, `format ""`},
		{"wrong version", `{"format":"mqa-bpe","version":2,"vocab_size":259,"merges":[]}`, "version 2"},
		{"missing merges", `{"format":"mqa-bpe","version":1,"vocab_size":259}`, "missing \"merges\""},
		{"null merges", `{"format":"mqa-bpe","version":1,"vocab_size":259,"merges":null}`, "missing \"merges\""},
		{"merges not array", `{"format":"mqa-bpe","version":1,"vocab_size":259,"merges":{}}`, "not an array"},
		{"vocab too small", `{"format":"mqa-bpe","version":1,"vocab_size":10,"merges":[]}`, "vocab_size 10 out of range"},
		{"vocab absurd", `{"format":"mqa-bpe","version":1,"vocab_size":99999999999,"merges":[]}`, "out of range"},
		{"vocab mismatch", `{"format":"mqa-bpe","version":1,"vocab_size":262,"merges":[[3,4]]}`, "vocab_size 262 but 1 merges"},
		{"too many merges", `{"format":"mqa-bpe","version":1,"vocab_size":260,"merges":[[3,4],[4,5]]}`, "more merges than"},
		{"future id", `{"format":"mqa-bpe","version":1,"vocab_size":261,"merges":[[3,260],[3,4]]}`, "not a byte or earlier merged token"},
		{"self reference", `{"format":"mqa-bpe","version":1,"vocab_size":260,"merges":[[259,3]]}`, "not a byte or earlier"},
		{"special id", `{"format":"mqa-bpe","version":1,"vocab_size":260,"merges":[[2,3]]}`, "not a byte or earlier"},
		{"negative id", `{"format":"mqa-bpe","version":1,"vocab_size":260,"merges":[[-3,3]]}`, "not in [0, 260)"},
		{"duplicate", `{"format":"mqa-bpe","version":1,"vocab_size":261,"merges":[[3,4],[3,4]]}`, "repeats merge 0"},
		{"three ids", `{"format":"mqa-bpe","version":1,"vocab_size":260,"merges":[[3,4,5]]}`, "3 elements"},
		{"float id", `{"format":"mqa-bpe","version":1,"vocab_size":260,"merges":[[3.5,4]]}`, "merge 0"},
		{"string id", `{"format":"mqa-bpe","version":1,"vocab_size":260,"merges":[["3",4]]}`, "merge 0"},
		{"trailing data", ok + ` {}`, "after the JSON object"},
		{"huge", `{"format":"mqa-bpe"` + strings.Repeat(" ", MaxTokenizerFileBytes) + `}`, "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokenizer([]byte(tc.in), "t.json")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "t.json: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q, want t.json: ...%s...", err, tc.wantErr)
			}
		})
	}
}

func TestParseTokenizerLongToken(t *testing.T) {
	// A chain of merges that builds a token longer than MaxChunkBytes.
	var sb strings.Builder
	n := MaxChunkBytes
	sb.WriteString(`{"format":"mqa-bpe","version":1,"vocab_size":`)
	merges := []string{"[3,3]"}
	for i := 1; i < n; i++ {
		merges = append(merges, "["+itoa(258+i)+",3]")
	}
	sb.WriteString(itoa(259 + len(merges)))
	sb.WriteString(`,"merges":[` + strings.Join(merges, ",") + `]}`)
	_, err := ParseTokenizer([]byte(sb.String()), "long.json")
	if err == nil || !strings.Contains(err.Error(), "longer than the chunk limit") {
		t.Fatalf("error %v, want one about the chunk limit", err)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
