package main

import (
	"fmt"
	"os"

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
		return tok.EncodeLines(os.Stdin, "standard input", os.Stdout)
	}
	return fmt.Errorf("tokenize: give -train FILE and -out FILE, or -tok FILE: %w", errUsage)
}
