package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"mqa/checkpoints"
)

const (
	// tokenizerFormat and tokenizerVersion identify the JSON file format.
	tokenizerFormat  = "mqa-bpe"
	tokenizerVersion = 1
	// MaxTokenizerFileBytes is the largest tokenizer file that
	// LoadTokenizer and ParseTokenizer accept.
	MaxTokenizerFileBytes = 64 << 20
)

// tokenizerJSON is the format mqa wrote before it wrote Hugging Face's (which
// LoadTokenizer still reads):
//
//	{"format":"mqa-bpe","version":1,"vocab_size":N,"merges":[[a,b],...]}
//
// where merge i, [a,b], makes token 259+i from tokens a and b.
type tokenizerJSON struct {
	Format    string          `json:"format"`
	Version   int             `json:"version"`
	VocabSize int             `json:"vocab_size"`
	Merges    json.RawMessage `json:"merges"`
}

// Save writes the tokenizer as JSON (see MarshalJSON) to path, through a
// temporary file in the same directory that is renamed into place.
func (t *Tokenizer) Save(path string) error {
	data, err := t.MarshalJSON()
	if err != nil {
		return fmt.Errorf("data: save tokenizer %s: %w", path, err)
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("data: save tokenizer: %w", err)
	}
	err = tmp.Chmod(0o644)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("data: save tokenizer %s: %w", path, err)
	}
	return nil
}

// LoadTokenizer reads a tokenizer saved by Save; see ParseTokenizer for the
// checks. Errors name path.
func LoadTokenizer(path string) (*Tokenizer, error) {
	f, err := checkpoints.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("data: load tokenizer: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTokenizerFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("data: load tokenizer %s: %w", path, err)
	}
	return ParseTokenizer(data, path)
}

// ParseTokenizer decodes a tokenizer from its JSON form: Hugging Face's
// tokenizers format as MarshalJSON writes it (see parseHFTokenizer for what is
// checked), or the older mqa-bpe format. The older format is read strictly:
// unknown or missing fields, a format other than "mqa-bpe",
// a version other than 1, a vocab_size that does not equal 259 plus the
// number of merges, a merge that is not two integers, a merge that uses a
// special id or an id not yet defined, a repeated merge, more than
// MaxMerges merges, data after the object, or more than
// MaxTokenizerFileBytes bytes are all errors that start with source.
func ParseTokenizer(data []byte, source string) (*Tokenizer, error) {
	t, err := parseTokenizer(data)
	if err != nil {
		return nil, fmt.Errorf("%s: tokenizer: %w", source, err)
	}
	return t, nil
}

func parseTokenizer(data []byte) (*Tokenizer, error) {
	if len(data) > MaxTokenizerFileBytes {
		return nil, fmt.Errorf("file larger than %d bytes", MaxTokenizerFileBytes)
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal(data, &keys) == nil && keys["model"] != nil && keys["format"] == nil {
		return parseHFTokenizer(data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f tokenizerJSON
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON object")
	}
	if f.Format != tokenizerFormat {
		return nil, fmt.Errorf("format %q, want %q", f.Format, tokenizerFormat)
	}
	if f.Version != tokenizerVersion {
		return nil, fmt.Errorf("version %d not supported (want %d)", f.Version, tokenizerVersion)
	}
	if f.VocabSize < baseVocab || f.VocabSize > baseVocab+MaxMerges {
		return nil, fmt.Errorf("vocab_size %d out of range [%d, %d]", f.VocabSize, baseVocab, baseVocab+MaxMerges)
	}
	if f.Merges == nil || bytes.Equal(bytes.TrimSpace(f.Merges), []byte("null")) {
		return nil, errors.New(`missing "merges"`)
	}
	merges, err := parseMerges(f.Merges, f.VocabSize-baseVocab)
	if err != nil {
		return nil, err
	}
	if baseVocab+len(merges) != f.VocabSize {
		return nil, fmt.Errorf("vocab_size %d but %d merges (want vocab_size %d)", f.VocabSize, len(merges), baseVocab+len(merges))
	}
	return newTokenizer(merges)
}

// parseMerges decodes the merges array element by element, so that a list
// longer than want (the count vocab_size implies) is rejected without
// allocating for it.
func parseMerges(raw json.RawMessage, want int) ([][2]int32, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, errors.New(`"merges" is not an array`)
	}
	merges := make([][2]int32, 0, min(want, 1<<16))
	for dec.More() {
		i := len(merges)
		if i >= want {
			return nil, fmt.Errorf("more merges than vocab_size implies (%d)", want)
		}
		var pair []int64
		if err := dec.Decode(&pair); err != nil {
			return nil, fmt.Errorf("merge %d: want [a,b] with integer ids: %w", i, err)
		}
		if len(pair) != 2 {
			return nil, fmt.Errorf("merge %d: has %d elements, want 2", i, len(pair))
		}
		var m [2]int32
		for j, v := range pair {
			if v < 0 || v >= int64(baseVocab+want) {
				return nil, fmt.Errorf("merge %d: id %d is not in [0, %d)", i, v, baseVocab+want)
			}
			m[j] = int32(v)
		}
		merges = append(merges, m)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("merges: %w", err)
	}
	return merges, nil
}
