package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"mqa/data"
)

func init() {
	commands["tokenize"] = command{"train a BPE tokenizer, or encode stdin with one", runTokenize}
}

func runTokenize(args []string) error {
	fs := newFlags("tokenize", "-train FILE -vocab N -out tok.json | -tok tok.json < text")
	trainPath := fs.String("train", "", "text to learn merges from (one document a line)")
	vocab := fs.Int("vocab", 8192, "vocabulary size (259 bytes and specials, the rest merges)")
	out := fs.String("out", "", "where to write the tokenizer JSON")
	tokPath := fs.String("tok", "", "a tokenizer JSON: encode standard input, a line of ids per line")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *trainPath != "" && *out != "":
		texts, err := data.LoadText(*trainPath, "", "")
		if err != nil {
			return err
		}
		tok, err := data.TrainBPE(texts, *vocab)
		if err != nil {
			return fmt.Errorf("%v: %w", err, errUsage)
		}
		if err := tok.Save(*out); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "mqa tokenize: %d tokens (%d merges) → %s\n", tok.VocabSize(), tok.NumMerges(), *out)
		return nil
	case *tokPath != "":
		tok, err := data.LoadTokenizer(*tokPath)
		if err != nil {
			return err
		}
		return encodeLines(tok, os.Stdin, os.Stdout)
	}
	return fmt.Errorf("tokenize: give -train FILE and -out FILE, or -tok FILE: %w", errUsage)
}

// encodeLines writes the ids of each input line as a line of space-separated numbers. A
// line longer than data.MaxLineBytes is an error naming its number; no more than that is
// held in memory.
func encodeLines(tok *data.Tokenizer, r io.Reader, w io.Writer) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	var line []byte
	for n := 1; ; n++ {
		line = line[:0]
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if len(line)+len(chunk) > data.MaxLineBytes+2 {
				return fmt.Errorf("standard input:%d: line longer than %d bytes", n, data.MaxLineBytes)
			}
			line = append(line, chunk...)
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if len(line) > 0 {
			text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
			if len(text) > data.MaxLineBytes {
				return fmt.Errorf("standard input:%d: line longer than %d bytes", n, data.MaxLineBytes)
			}
			ids := tok.Encode(text)
			parts := make([]string, len(ids))
			for i, id := range ids {
				parts[i] = strconv.Itoa(id)
			}
			fmt.Fprintln(bw, strings.Join(parts, " "))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
	}
}
