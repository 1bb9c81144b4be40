// Command gen writes the parity test sets under infer/bleu/testdata from
// the Spanish side of /work/shared/corpora/bible.en-es.test.tsv.
//
// References are verbatim Spanish lines; hypotheses are deterministic
// corruptions of them (dropped, swapped, replaced and duplicated words,
// truncated lines, one empty and one very short line, and a few lines that
// exercise the 13a tokenizer and whitespace handling).
//
//	go run ./infer/bleu/testdata/gen [corpus.tsv]
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// rng is splitmix64, so the output never depends on a library's generator.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

var fillers = []string{"el", "de", "que", "casa", "xxx", "Señor", "y"}

func corrupt(r *rng, s string) string {
	w := strings.Fields(s)
	if len(w) == 0 {
		return s
	}
	switch r.intn(7) {
	case 0: // unchanged
	case 1: // drop words
		for k := 1 + r.intn(3); k > 0 && len(w) > 1; k-- {
			i := r.intn(len(w))
			w = append(w[:i], w[i+1:]...)
		}
	case 2: // swap adjacent words
		for k := 1 + r.intn(2); k > 0 && len(w) > 1; k-- {
			i := r.intn(len(w) - 1)
			w[i], w[i+1] = w[i+1], w[i]
		}
	case 3: // truncate
		w = w[:1+r.intn(len(w))]
	case 4: // replace a word
		w[r.intn(len(w))] = fillers[r.intn(len(fillers))]
	case 5: // duplicate a word
		i := r.intn(len(w))
		w = append(w[:i+1], w[i:]...)
	case 6: // drop and swap
		if len(w) > 2 {
			i := r.intn(len(w))
			w = append(w[:i], w[i+1:]...)
			j := r.intn(len(w) - 1)
			w[j], w[j+1] = w[j+1], w[j]
		}
	}
	return strings.Join(w, " ")
}

func write(path string, lines []string) {
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		panic(err)
	}
}

func main() {
	src := "/work/shared/corpora/bible.en-es.test.tsv"
	if len(os.Args) > 1 {
		src = os.Args[1]
	}
	f, err := os.Open(src)
	if err != nil {
		panic(err)
	}
	var es []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) == 2 {
			es = append(es, parts[1])
		}
	}
	f.Close()
	dir := filepath.Join("infer", "bleu", "testdata")

	sets := []struct {
		name  string
		start int
		n     int
		seed  uint64
	}{{"small", 0, 5, 1}, {"medium", 5, 100, 2}, {"large", 105, 1000, 3}}
	for _, set := range sets {
		r := rng(set.seed)
		refs := append([]string(nil), es[set.start:set.start+set.n]...)
		hyps := make([]string, len(refs))
		for i, ref := range refs {
			hyps[i] = corrupt(&r, ref)
		}
		// Every set has one empty and one very short hypothesis.
		hyps[len(hyps)/2] = ""
		hyps[len(hyps)-1] = strings.Fields(refs[len(refs)-1])[0]
		if set.name == "medium" {
			// Lines for the tokenizer and whitespace handling.
			hyps[3] = "Tom &amp; Jerry &quot;dijo&quot; 3,5 y 1.000 o 10-12 &lt;b&gt; <skipped>fin."
			refs[3] = `Tom & Jerry "dijo" 3,5 y 1.000 o 10-12 <b> fin.`
			hyps[7] = "a\u00a0b\u3000c\u2028d\x1ce\u0085f  \t g ."
			refs[7] = "a b c d e f g ."
			hyps[11] = refs[11] + " \t\u00a0"
			hyps[13] = strings.ToLower(refs[13])
			refs[17] = "" // an empty reference
			hyps[19] = "(hola)--¿qué?... «sí» $5.00 a.b,c 4-5-6 http://x.y/z 'bien'"
			refs[19] = "( hola ) -- ¿ qué ? ... « sí » $ 5.00 a . b , c 4 - 5 - 6 http : / / x . y / z ' bien '"
		}
		write(filepath.Join(dir, set.name+".hyp"), hyps)
		write(filepath.Join(dir, set.name+".ref"), refs)
		fmt.Printf("%s: %d lines\n", set.name, len(refs))
	}
}
