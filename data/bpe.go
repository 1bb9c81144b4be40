package data

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Special token ids. They never come out of Encode; Decode skips them.
const (
	PadID = 0 // padding
	BOSID = 1 // beginning of sequence
	EOSID = 2 // end of sequence / document separator
)

const (
	// numSpecial is the number of special tokens before the byte tokens.
	numSpecial = 3
	// byteBase is the id of the token for byte 0; byte b has id byteBase+b.
	byteBase = numSpecial
	// baseVocab is the vocabulary size with no merges: specials and bytes.
	baseVocab = numSpecial + 256
	// MaxMerges is the largest number of merges a tokenizer may have.
	MaxMerges = 1 << 20
	// encodeCacheLimit bounds the number of chunks a Tokenizer caches.
	encodeCacheLimit = 1 << 18
)

// Tokenizer is a byte-level BPE tokenizer. Ids 0, 1, 2 are PadID, BOSID and
// EOSID; ids 3..258 are the bytes 0..255; id 259+i is the token made by
// merge i. Every byte string, valid UTF-8 or not, encodes without an
// unknown token, and Decode(Encode(s)) == s.
//
// Make one with TrainBPE, LoadTokenizer or ParseTokenizer; the zero
// Tokenizer is not usable. A Tokenizer is safe for concurrent use.
type Tokenizer struct {
	merges [][2]int32       // merge i joins merges[i][0] and merges[i][1]
	ranks  map[uint64]int32 // pair key -> merge index
	offs   []int            // token id -> start of its bytes in pieces; len = vocab+1
	pieces []byte           // concatenated bytes of every token
	mu     sync.RWMutex     // guards cache
	cache  map[string][]int // chunk -> token ids
}

// pairKey packs the pair (a, b) so that keys order like (a, b).
func pairKey(a, b int32) uint64 {
	return uint64(uint32(a))<<32 | uint64(uint32(b))
}

// newTokenizer checks merges and builds the lookup tables. Each merge must
// join two non-special ids that exist before it, must not repeat an earlier
// merge, and must not make a token longer than MaxChunkBytes (such a token
// could never be produced, see splitChunks).
func newTokenizer(merges [][2]int32) (*Tokenizer, error) {
	if len(merges) > MaxMerges {
		return nil, fmt.Errorf("%d merges, more than the limit %d", len(merges), MaxMerges)
	}
	t := &Tokenizer{
		merges: merges,
		ranks:  make(map[uint64]int32, len(merges)),
		offs:   make([]int, 0, baseVocab+len(merges)+1),
		cache:  make(map[string][]int),
	}
	for range numSpecial {
		t.offs = append(t.offs, 0)
	}
	for b := range 256 {
		t.offs = append(t.offs, len(t.pieces))
		t.pieces = append(t.pieces, byte(b))
	}
	for i, m := range merges {
		id := int32(baseVocab + i)
		for _, x := range m {
			if x < byteBase || x >= id {
				return nil, fmt.Errorf("merge %d [%d,%d]: id %d is not a byte or earlier merged token (want %d..%d)",
					i, m[0], m[1], x, byteBase, id-1)
			}
		}
		key := pairKey(m[0], m[1])
		if prev, dup := t.ranks[key]; dup {
			return nil, fmt.Errorf("merge %d [%d,%d] repeats merge %d", i, m[0], m[1], prev)
		}
		t.ranks[key] = int32(i)
		a, b := t.piece(int(m[0])), t.piece(int(m[1]))
		if len(a)+len(b) > MaxChunkBytes {
			return nil, fmt.Errorf("merge %d [%d,%d] makes a %d-byte token, longer than the chunk limit %d",
				i, m[0], m[1], len(a)+len(b), MaxChunkBytes)
		}
		t.offs = append(t.offs, len(t.pieces))
		t.pieces = append(t.pieces, a...)
		t.pieces = append(t.pieces, b...)
	}
	t.offs = append(t.offs, len(t.pieces))
	return t, nil
}

// piece returns the bytes of token id, which must be in range. The result
// aliases t.pieces.
func (t *Tokenizer) piece(id int) []byte {
	if id < numSpecial {
		return nil
	}
	if id+1 >= len(t.offs) {
		// Still being built: the token's end is the end of pieces.
		return t.pieces[t.offs[id]:]
	}
	return t.pieces[t.offs[id]:t.offs[id+1]]
}

// VocabSize returns the number of token ids: 259 plus the number of merges.
func (t *Tokenizer) VocabSize() int {
	return baseVocab + len(t.merges)
}

// NumMerges returns the number of merges (VocabSize() - 259).
func (t *Tokenizer) NumMerges() int {
	return len(t.merges)
}

// TokenBytes returns the bytes that token id stands for: empty for the
// special tokens, and ok == false for an id outside [0, VocabSize()).
func (t *Tokenizer) TokenBytes(id int) (b []byte, ok bool) {
	if id < 0 || id >= t.VocabSize() {
		return nil, false
	}
	return slices.Clone(t.piece(id)), true
}

// Encode returns the token ids of s: s is split into chunks (see the rules
// below) and each chunk is encoded on its own by applying the merges in the
// order they were learned. No BOS or EOS is added.
//
// Pre-tokenisation: a run of white space is a chunk, except that a final
// ASCII space before more text starts the next chunk; any other chunk is an
// optional single leading space followed by a run of letters (with
// combining marks), or of digits, or of other non-space characters; each
// byte of invalid UTF-8 is a chunk of its own (again with an optional
// leading space); and runs are cut so no chunk exceeds MaxChunkBytes.
func (t *Tokenizer) Encode(s string) []int {
	out := make([]int, 0, len(s)/3+1)
	splitChunks(s, func(chunk string) {
		out = t.appendChunk(out, chunk)
	})
	return out
}

// appendChunk appends the ids of one chunk, using and filling the cache.
func (t *Tokenizer) appendChunk(out []int, chunk string) []int {
	t.mu.RLock()
	ids, ok := t.cache[chunk]
	t.mu.RUnlock()
	if ok {
		return append(out, ids...)
	}
	ids = t.encodeChunk(chunk)
	t.mu.Lock()
	if len(t.cache) < encodeCacheLimit {
		t.cache[strings.Clone(chunk)] = ids
	}
	t.mu.Unlock()
	return append(out, ids...)
}

// encodeChunk applies the merges to one chunk: repeatedly the adjacent pair
// with the lowest merge index is joined everywhere (left to right, without
// overlap) until no adjacent pair is a merge. This gives the same tokens
// as replaying the merges one by one in training order.
func (t *Tokenizer) encodeChunk(chunk string) []int {
	syms := make([]int, len(chunk))
	for i := 0; i < len(chunk); i++ {
		syms[i] = byteBase + int(chunk[i])
	}
	for len(syms) > 1 {
		best := int32(-1)
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := t.ranks[pairKey(int32(syms[i]), int32(syms[i+1]))]; ok && (best < 0 || r < best) {
				best = r
			}
		}
		if best < 0 {
			break
		}
		a, b := int(t.merges[best][0]), int(t.merges[best][1])
		syms = mergePair(syms, a, b, baseVocab+int(best))
	}
	return syms
}

// mergePair replaces, left to right, each non-overlapping occurrence of the
// adjacent pair (a, b) in syms by id, in place, and returns the shortened
// slice.
func mergePair[T int | int32](syms []T, a, b, id T) []T {
	w := 0
	for r := 0; r < len(syms); r++ {
		if r+1 < len(syms) && syms[r] == a && syms[r+1] == b {
			syms[w] = id
			r++
		} else {
			syms[w] = syms[r]
		}
		w++
	}
	return syms[:w]
}

// Decode returns the text of ids. Special tokens (PadID, BOSID, EOSID)
// produce nothing, and ids outside [0, VocabSize()) are skipped silently;
// use DecodeChecked to have them reported. The result may be invalid UTF-8
// when ids split a multi-byte character.
func (t *Tokenizer) Decode(ids []int) string {
	var sb strings.Builder
	for _, id := range ids {
		if id >= 0 && id < t.VocabSize() {
			sb.Write(t.piece(id))
		}
	}
	return sb.String()
}

// DecodeChecked is like Decode but returns an error naming the first id
// outside [0, VocabSize()).
func (t *Tokenizer) DecodeChecked(ids []int) (string, error) {
	for i, id := range ids {
		if id < 0 || id >= t.VocabSize() {
			return "", fmt.Errorf("data: token %d at position %d is outside the vocabulary [0,%d)", id, i, t.VocabSize())
		}
	}
	return t.Decode(ids), nil
}
