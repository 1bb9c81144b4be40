package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/infer/study"
	"mqa/models"
	"mqa/train"
)

// defaultCorpus is the embedded corpus of a task.
func defaultCorpus(task string) string {
	if task == models.TaskTranslate {
		return "bible.en-es"
	}
	return "lm-en"
}

// dataSettings say where a task's data come from (files, or an embedded corpus) and how
// they are batched. They are saved with each checkpoint (run.json) so a resumed run reads
// the same data in the same order.
type dataSettings struct {
	Task      string `json:"task"`
	Corpus    string `json:"corpus"`          // embedded corpus name
	Train     string `json:"train,omitempty"` // files replacing the corpus's splits
	Valid     string `json:"valid,omitempty"`
	Test      string `json:"test,omitempty"`
	Vocab     int    `json:"vocab"`   // BPE vocabulary size when a tokenizer is trained
	SeqLen    int    `json:"seq_len"` // LM windows
	Batch     int    `json:"batch"`
	MaxTokens int    `json:"max_tokens"` // translation batches
	MaxLen    int    `json:"max_len"`
	Seed      uint64 `json:"seed"` // shuffling
	EvalEvery int    `json:"eval_every"`
	CkptEvery int    `json:"ckpt_every"`
	Keep      int    `json:"keep"`
	// EvalBatches bounds validation during training (the final one uses everything).
	EvalBatches int `json:"eval_batches"`
	// UptrainedFrom is the checkpoint an uptrained model was pooled from (mqa uptrain).
	UptrainedFrom *study.UptrainSource `json:"uptrained_from,omitempty"`
	// TrainFile, ValidFile and TestFile identify the files Train, Valid and Test (absolute
	// paths) by size, lines and SHA-256, so that a resumed run or eval notices a file that
	// moved or changed. Nil for the embedded corpus, and in runs saved before they existed.
	TrainFile *data.FileID `json:"train_file,omitempty"`
	ValidFile *data.FileID `json:"valid_file,omitempty"`
	TestFile  *data.FileID `json:"test_file,omitempty"`
}

// dataSpec is the loaded data of a run.
type dataSpec struct {
	dataSettings
	tokenizerPath         string          // a tokenizer to reuse instead of training one
	separateVocab         bool            // translation: separate source and target tokenizers
	srcTok, tok           *data.Tokenizer // set before load to reuse a checkpoint's
	trainSource           train.Source
	valid, test           []train.Batch
	validPairs, testPairs []data.Pair // translation: the text of the kept evaluation pairs, in batch order
	testWords, validWords int         // LM: words in the evaluation texts (for per-word perplexity)
	validDocs, testDocs   []docSize   // LM: each evaluation document's tokens and words
	dropped               string      // a note on pairs dropped for length
	quiet                 bool        // no training progress on standard error
}

// load reads the splits, trains (or loads) the tokenizer, and builds the batches.
func (d *dataSpec) load() error {
	if d.Corpus == "" {
		d.Corpus = defaultCorpus(d.Task)
	}
	if d.Task == models.TaskTranslate {
		return d.loadTranslation()
	}
	return d.loadLM()
}

func (d *dataSpec) loadLM() error {
	trainText, err := data.LoadText(d.Train, d.Corpus, "train")
	if err != nil {
		return err
	}
	validText, err := data.LoadText(d.Valid, d.Corpus, "valid")
	if err != nil {
		return err
	}
	testText, err := data.LoadText(d.Test, d.Corpus, "test")
	if err != nil {
		return err
	}
	if d.tok == nil {
		if d.tok, err = d.tokenizer(trainText, d.tokenizerPath); err != nil {
			return err
		}
	}
	stream, err := data.NewLMStream(encodeDocs(d.tok, trainText), d.Batch, d.SeqLen, d.Seed)
	if err != nil {
		return fmt.Errorf("training data: %w", err)
	}
	d.trainSource = train.LMSource{LMStream: stream}
	d.valid, d.validWords = lmEvalBatches(d.tok, validText, d.SeqLen, d.Batch), countWords(validText)
	d.test, d.testWords = lmEvalBatches(d.tok, testText, d.SeqLen, d.Batch), countWords(testText)
	d.validDocs, d.testDocs = docSizes(d.tok, validText), docSizes(d.tok, testText)
	return nil
}

func encodeDocs(tok *data.Tokenizer, docs []string) []int {
	ids := make([][]int, len(docs))
	for i, doc := range docs {
		ids[i] = tok.Encode(doc)
	}
	return data.JoinDocuments(ids)
}

func countWords(docs []string) int {
	n := 0
	for _, d := range docs {
		n += len(strings.Fields(d))
	}
	return n
}

// lmEvalBatches cuts a text into windows of seqLen, batched by up to batch equal-length windows.
func lmEvalBatches(tok *data.Tokenizer, docs []string, seqLen, batch int) []train.Batch {
	inputs, targets := data.EvalWindows(encodeDocs(tok, docs), seqLen)
	var out []train.Batch
	for i := 0; i < len(inputs); {
		n := len(inputs[i])
		b := train.Batch{Shape: models.Shape{TgtLen: n}}
		for ; i < len(inputs) && len(inputs[i]) == n && b.Shape.Batch < batch; i++ {
			b.Tokens = append(b.Tokens, inputs[i]...)
			b.Targets = append(b.Targets, targets[i]...)
			b.Shape.Batch++
		}
		out = append(out, b)
	}
	return out
}

func (d *dataSpec) loadTranslation() error {
	trainPairs, err := data.LoadTSV(d.Train, d.Corpus, "train")
	if err != nil {
		return err
	}
	validPairs, err := data.LoadTSV(d.Valid, d.Corpus, "valid")
	if err != nil {
		return err
	}
	testPairs, err := data.LoadTSV(d.Test, d.Corpus, "test")
	if err != nil {
		return err
	}
	var src, tgt []string
	for _, p := range trainPairs {
		src, tgt = append(src, p.Src), append(tgt, p.Tgt)
	}
	switch {
	case d.tok != nil:
		if d.srcTok == nil {
			d.srcTok = d.tok
		}
	case d.separateVocab:
		if d.srcTok, err = d.tokenizer(src, ""); err != nil {
			return err
		}
		if d.tok, err = d.tokenizer(tgt, ""); err != nil {
			return err
		}
	default:
		if d.tok, err = d.tokenizer(append(src, tgt...), d.tokenizerPath); err != nil {
			return err
		}
		d.srcTok = d.tok
	}
	batcher, stats, err := data.NewTranslationBatcher(d.encodePairs(trainPairs), d.MaxTokens, d.MaxLen, d.Seed)
	if err != nil {
		return fmt.Errorf("training data: %w", err)
	}
	d.trainSource = train.TranslationSource{TranslationBatcher: batcher}
	notes := []string{lengthNote("train", stats, d.MaxLen)}
	var vnote, tnote string
	d.valid, d.validPairs, vnote = d.evalTranslation("valid", validPairs)
	d.test, d.testPairs, tnote = d.evalTranslation("test", testPairs)
	d.dropped = strings.Join(append(notes, vnote, tnote), "; ")
	return nil
}

func lengthNote(split string, s data.LengthStats, maxLen int) string {
	return fmt.Sprintf("%s: %d pairs kept, %d dropped (%d longer than %d tokens, %d with an empty source)",
		split, s.Kept, s.Dropped, s.TooLong, maxLen, s.EmptySrc)
}

func (d *dataSpec) encodePairs(pairs []data.Pair) []data.TokenPair {
	out := make([]data.TokenPair, len(pairs))
	for i, p := range pairs {
		out[i] = data.TokenPair{Src: d.srcTok.Encode(p.Src), Tgt: d.tok.Encode(p.Tgt)}
	}
	return out
}

// evalTranslation batches evaluation pairs in order and returns the kept pairs' text in
// batch-row order.
func (d *dataSpec) evalTranslation(split string, pairs []data.Pair) ([]train.Batch, []data.Pair, string) {
	batches, stats := data.EvalTranslationBatches(d.encodePairs(pairs), d.MaxTokens, d.MaxLen)
	var out []train.Batch
	var kept []data.Pair
	for _, b := range batches {
		out = append(out, train.FromTranslation(b))
		for _, i := range b.Index {
			kept = append(kept, pairs[i])
		}
	}
	return out, kept, lengthNote(split, stats, d.MaxLen)
}

// tokenizer loads path, or trains a BPE of d.Vocab on texts.
func (d *dataSpec) tokenizer(texts []string, path string) (*data.Tokenizer, error) {
	if path != "" {
		return data.LoadTokenizer(path)
	}
	tok, err := data.TrainBPE(texts, d.Vocab)
	if err != nil {
		return nil, fmt.Errorf("training the tokenizer: %w", err)
	}
	return tok, nil
}

// saveFiles writes the tokenizer(s) and the data settings into a checkpoint directory,
// under the file names infer.Load reads.
func (d *dataSpec) saveFiles(dir string) error {
	if err := checkpoints.WriteJSON(filepath.Join(dir, checkpoints.RunFile), d.dataSettings); err != nil {
		return err
	}
	if err := d.tok.Save(filepath.Join(dir, checkpoints.TokenizerFile)); err != nil {
		return err
	}
	if d.srcTok != nil && d.srcTok != d.tok {
		return d.srcTok.Save(filepath.Join(dir, checkpoints.SrcTokenizerFile))
	}
	return nil
}

// srcVocab is the source vocabulary size (0 for an LM).
func (d *dataSpec) srcVocab() int {
	if d.srcTok == nil {
		return 0
	}
	return d.srcTok.VocabSize()
}
