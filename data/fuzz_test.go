package data

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// trainFuzzTokenizer trains, once, a small tokenizer on a little of each
// corpus.
var trainFuzzTokenizer = sync.OnceValues(func() (*Tokenizer, error) {
	return TrainBPE([]string{
		"It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
		"En el principio crió Dios los cielos y la tierra.",
		"Wählen Sie Format - Zeichen, um die Schriftart zu ändern.",
		"Call me Ishmael. Some years ago—never mind how long precisely—",
	}, 400)
})

func fuzzTokenizer(t *testing.T) *Tokenizer {
	tok, err := trainFuzzTokenizer()
	if err != nil {
		t.Fatal("could not train the fuzz tokenizer:", err)
	}
	return tok
}

func FuzzTokenizerRoundTrip(f *testing.F) {
	f.Add([]byte("Hello, world!"))
	f.Add([]byte("a  b\n\n\tc \xff\xfe"))
	f.Add([]byte("naïve café — 2024"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tok := fuzzTokenizer(t)
		s := string(in)
		ids := tok.Encode(s)
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
		if got, err := tok.DecodeChecked(ids); err != nil || got != s {
			t.Fatalf("DecodeChecked(Encode(%q)) = %q, %v", s, got, err)
		}
		if strings.Join(chunksOf(s), "") != s {
			t.Fatalf("chunks of %q do not concatenate to it", s)
		}
		if utf8.ValidString(s) {
			if got, want := hfChunks(chunkRegexp, s), chunksOf(s); !slices.Equal(got, want) {
				t.Fatalf("pre-tokenising %q: the Hugging Face pattern gives %q, splitChunks %q", s, got, want)
			}
		}
		if len(s) < 2000 {
			if want := naiveEncode(tok, s); !slices.Equal(ids, want) {
				t.Fatalf("Encode(%q) = %v, replaying merges gives %v", s, ids, want)
			}
		}
	})
}

func FuzzParseTokenizer(f *testing.F) {
	f.Add([]byte(`{"format":"mqa-bpe","version":1,"vocab_size":261,"merges":[[3,4],[259,5]]}`))
	f.Add([]byte(`{"format":"mqa-bpe","version":1,"vocab_size":259,"merges":[]}`))
	f.Add([]byte(`{"format":"mqa-bpe","version":1,"vocab_size":260,"merges":[[3,3,3]]}`))
	if tok, err := newTokenizer([][2]int32{{3 + 'a', 3 + 'b'}, {259, 3 + 'c'}}); err == nil {
		if hf, err := tok.MarshalJSON(); err == nil {
			f.Add(hf)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseTokenizer(data, "fuzz.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.json: ") {
				t.Fatalf("error %q does not name the source", err)
			}
			return
		}
		// A tokenizer that parses must survive a save/parse round trip and
		// round-trip text. Only an old-format file with two tokens of the same
		// bytes cannot be written in Hugging Face's format.
		out, err := tok.MarshalJSON()
		if err != nil {
			if !strings.Contains(err.Error(), "the same bytes") {
				t.Fatal(err)
			}
			return
		}
		tok2, err := ParseTokenizer(out, "again")
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		out2, _ := tok2.MarshalJSON()
		if !bytes.Equal(out, out2) {
			t.Fatal("JSON changed on a second round trip")
		}
		s := "the quick brown fox \xff 123"
		if tok.Decode(tok.Encode(s)) != s {
			t.Fatal("round trip failed")
		}
	})
}

func FuzzReadTSV(f *testing.F) {
	f.Add([]byte("a\tb\nc\td\n"))
	f.Add([]byte("\xef\xbb\xbfa\tb\r\n\n"))
	f.Add([]byte("a\tb\tc\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pairs, err := ReadTSV(bytes.NewReader(data), "fuzz.tsv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.tsv:") {
				t.Fatalf("error %q does not name the source", err)
			}
			return
		}
		if len(pairs) == 0 {
			t.Fatal("no error and no pairs")
		}
		for _, p := range pairs {
			if strings.TrimSpace(p.Src) == "" || strings.TrimSpace(p.Tgt) == "" ||
				strings.ContainsAny(p.Src, "\t\n") || strings.ContainsAny(p.Tgt, "\t\n") {
				t.Fatalf("bad pair %q", p)
			}
		}
		// Text reading never fails on input that ReadTSV accepts.
		if _, err := ReadTextLines(bytes.NewReader(data), "fuzz.txt"); err != nil {
			t.Fatalf("ReadTextLines: %v", err)
		}
	})
}
