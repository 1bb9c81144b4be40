package data

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func chunksOf(s string) []string {
	var out []string
	splitChunks(s, func(c string) { out = append(out, c) })
	return out
}

func TestSplitChunks(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"Hello, world!", []string{"Hello", ",", " world", "!"}},
		{"a  b", []string{"a", " ", " b"}},
		{"a\n\nb", []string{"a", "\n\n", "b"}},
		{"a \n b", []string{"a", " \n", " b"}},
		{"end  ", []string{"end", "  "}},
		{" lead", []string{" lead"}},
		{"it's 2024.", []string{"it", "'", "s", " 2024", "."}},
		{"naïve café", []string{"naïve", " café"}},
		{"e\u0301t\u00e9", []string{"e\u0301t\u00e9"}}, // combining mark stays in the word
		{"x\xff\xfey", []string{"x", "\xff", "\xfe", "y"}},
		{"a \xff", []string{"a", " \xff"}},
		{"--> ...", []string{"-->", " ..."}},
		{"日本語 テキスト", []string{"日本語", " テキスト"}},
		{"a\u00a0b", []string{"a", "\u00a0", "b"}}, // no-break space is white space
		{"\t", []string{"\t"}},
	}
	for _, tc := range tests {
		if got := chunksOf(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("splitChunks(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplitChunksLongRuns(t *testing.T) {
	for _, in := range []string{
		strings.Repeat("a", 1000),
		" " + strings.Repeat("é", 300),
		strings.Repeat(" ", 500) + "x",
		strings.Repeat("\n", 300),
		strings.Repeat("7", 129),
	} {
		got := chunksOf(in)
		if strings.Join(got, "") != in {
			t.Errorf("chunks of %.10q... do not concatenate to the input", in)
		}
		for _, c := range got {
			if len(c) > MaxChunkBytes {
				t.Errorf("chunk of %d bytes > MaxChunkBytes", len(c))
			}
		}
	}
}

func TestSplitChunksRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "1", " ", "  ", "\n", ".", "é", "\u0301", "\xff", "\xc3", "日", "\t", "\u2028"}
	for range 2000 {
		var sb strings.Builder
		for range r.IntN(300) {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		in := sb.String()
		got := chunksOf(in)
		if strings.Join(got, "") != in {
			t.Fatalf("chunks of %q = %q do not concatenate to the input", in, got)
		}
		for _, c := range got {
			if c == "" || len(c) > MaxChunkBytes {
				t.Fatalf("bad chunk %q in %q", c, in)
			}
		}
	}
}
