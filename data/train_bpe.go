package data

import (
	"fmt"
	"slices"
)

// bpeWord is one distinct chunk of the training texts, as current tokens.
type bpeWord struct {
	syms []int32
	freq int64
}

// pairCount is a heap entry: a pair and its count when it was pushed.
type pairCount struct {
	count int64
	key   uint64
}

// pairHeap is a max-heap of pair counts; among equal counts the smaller
// pair key (smaller first id, then smaller second id) comes first. Entries
// may be stale: the trainer checks them against the live counts.
type pairHeap []pairCount

func (h pairHeap) before(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count > h[j].count
	}
	return h[i].key < h[j].key
}

func (h *pairHeap) push(p pairCount) {
	*h = append(*h, p)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if !s.before(i, parent) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *pairHeap) pop() pairCount {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	s.down(0)
	*h = s
	return top
}

func (h pairHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.before(r, l) {
			m = r
		}
		if !h.before(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// CheckVocabSize reports whether TrainBPE can build a vocabulary of n tokens: the byte
// tokens and specials, plus at most MaxMerges merges.
func CheckVocabSize(n int) error {
	if n < baseVocab || n > baseVocab+MaxMerges {
		return fmt.Errorf("data: BPE vocabulary size %d out of range [%d, %d]", n, baseVocab, baseVocab+MaxMerges)
	}
	return nil
}

// TrainBPE learns a byte-level BPE tokenizer with vocabSize ids (259 for
// the specials and bytes, the rest merges) from texts.
//
// The texts are split into chunks as described at Tokenizer.Encode, and
// merges never cross a chunk boundary. Each step merges the adjacent pair
// of tokens that occurs most often in the corpus (adjacent occurrences in
// each distinct chunk, times the chunk's frequency); ties go to the smallest pair of ids, comparing the
// first id and then the second. Training is therefore deterministic. When
// no pair is left (every chunk is a single token) training stops early and
// VocabSize reports the real size.
//
// vocabSize must be between 259 and 259+MaxMerges.
func TrainBPE(texts []string, vocabSize int) (*Tokenizer, error) {
	if err := CheckVocabSize(vocabSize); err != nil {
		return nil, err
	}
	numMerges := vocabSize - baseVocab

	// Distinct chunks with their frequencies, in sorted order so that all
	// later iteration is deterministic.
	freq := make(map[string]int64)
	for _, text := range texts {
		splitChunks(text, func(chunk string) {
			if len(chunk) > 1 {
				freq[chunk]++ // one-byte chunks have no pairs to merge
			}
		})
	}
	chunks := make([]string, 0, len(freq))
	for c := range freq {
		chunks = append(chunks, c)
	}
	slices.Sort(chunks)

	words := make([]bpeWord, len(chunks))
	counts := make(map[uint64]int64)
	where := make(map[uint64][]int32) // pair -> words that contain (or once contained) it
	for w, c := range chunks {
		syms := make([]int32, len(c))
		for i := 0; i < len(c); i++ {
			syms[i] = int32(byteBase) + int32(c[i])
		}
		f := freq[c]
		words[w] = bpeWord{syms: syms, freq: f}
		for i := 0; i+1 < len(syms); i++ {
			k := pairKey(syms[i], syms[i+1])
			counts[k] += f
			if l := where[k]; len(l) == 0 || l[len(l)-1] != int32(w) {
				where[k] = append(l, int32(w))
			}
		}
	}
	freq = nil

	h := make(pairHeap, 0, len(counts))
	for k, c := range counts {
		h = append(h, pairCount{count: c, key: k})
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}

	merges := make([][2]int32, 0, numMerges)
	seen := make([]int32, len(words)) // last merge (+1) that visited a word
	delta := make(map[uint64]int64)
	for len(merges) < numMerges && len(h) > 0 {
		top := h.pop()
		live := counts[top.key]
		if live != top.count {
			if live > 0 {
				h.push(pairCount{count: live, key: top.key})
			}
			continue
		}
		a, b := int32(top.key>>32), int32(uint32(top.key))
		id := int32(baseVocab + len(merges))
		merges = append(merges, [2]int32{a, b})
		stamp := int32(len(merges))

		for _, w := range where[top.key] {
			if seen[w] == stamp {
				continue
			}
			seen[w] = stamp
			word := &words[w]
			if !hasPair(word.syms, a, b) {
				continue
			}
			for i := 0; i+1 < len(word.syms); i++ {
				delta[pairKey(word.syms[i], word.syms[i+1])] -= word.freq
			}
			word.syms = mergePair(word.syms, a, b, id)
			for i := 0; i+1 < len(word.syms); i++ {
				x, y := word.syms[i], word.syms[i+1]
				k := pairKey(x, y)
				delta[k] += word.freq
				if x == id || y == id {
					if l := where[k]; len(l) == 0 || l[len(l)-1] != w {
						where[k] = append(l, w)
					}
				}
			}
		}
		delete(where, top.key)
		for k, d := range delta {
			if d == 0 {
				continue
			}
			c := counts[k] + d
			if c <= 0 {
				delete(counts, k)
				continue
			}
			counts[k] = c
			if d > 0 {
				h.push(pairCount{count: c, key: k})
			}
		}
		clear(delta)
	}
	t, err := newTokenizer(merges)
	if err != nil {
		return nil, fmt.Errorf("data: TrainBPE built an invalid tokenizer: %w", err)
	}
	return t, nil
}

// hasPair reports whether the adjacent pair (a, b) occurs in syms.
func hasPair(syms []int32, a, b int32) bool {
	for i := 0; i+1 < len(syms); i++ {
		if syms[i] == a && syms[i+1] == b {
			return true
		}
	}
	return false
}
