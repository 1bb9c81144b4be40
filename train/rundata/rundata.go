// Package rundata is the data of a training run: where it comes from (the data settings
// saved as run.json with every checkpoint), its tokenizers and its batches.
package rundata

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/infer"
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

// Settings say where a task's data come from (files, or an embedded corpus) and how
// they are batched. They are saved with each checkpoint (run.json) so a resumed run reads
// the same data in the same order.
type Settings struct {
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
	UptrainedFrom *UptrainSource `json:"uptrained_from,omitempty"`
	// TrainFile, ValidFile and TestFile identify the files Train, Valid and Test (absolute
	// paths) by size, lines and SHA-256, so that a resumed run or eval notices a file that
	// moved or changed. Nil for the embedded corpus, and in runs saved before they existed.
	TrainFile *data.FileID `json:"train_file,omitempty"`
	ValidFile *data.FileID `json:"valid_file,omitempty"`
	TestFile  *data.FileID `json:"test_file,omitempty"`
}

// Data is the loaded data of a run.
type Data struct {
	Settings
	TokenizerPath             string          // a tokenizer to reuse instead of training one
	SeparateVocab             bool            // translation: separate source and target tokenizers
	SrcTok, Tok               *data.Tokenizer // set before load to reuse a checkpoint's
	TrainSource               train.Source
	ValidBatches, TestBatches []train.Batch
	ValidPairs, TestPairs     []data.Pair // translation: the text of the kept evaluation pairs, in batch order
	TestWords, ValidWords     int         // LM: words in the evaluation texts (for per-word perplexity)
	ValidDocs, TestDocs       []DocSize   // LM: each evaluation document's tokens and words
	Dropped                   string      // a note on pairs dropped for length
	Quiet                     bool        // no training progress on standard error
}

// Load reads the splits, trains (or loads) the tokenizer, and builds the batches.
func (d *Data) Load() error {
	if d.Corpus == "" {
		d.Corpus = defaultCorpus(d.Task)
	}
	if d.Task == models.TaskTranslate {
		return d.loadTranslation()
	}
	return d.loadLM()
}

func (d *Data) loadLM() error {
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
	if d.Tok == nil {
		if d.Tok, err = d.tokenizer(trainText, d.TokenizerPath); err != nil {
			return err
		}
	}
	stream, err := data.NewLMStream(encodeDocs(d.Tok, trainText), d.Batch, d.SeqLen, d.Seed)
	if err != nil {
		return fmt.Errorf("training data: %w", err)
	}
	d.TrainSource = train.LMSource{LMStream: stream}
	d.ValidBatches, d.ValidWords = lmEvalBatches(d.Tok, validText, d.SeqLen, d.Batch), countWords(validText)
	d.TestBatches, d.TestWords = lmEvalBatches(d.Tok, testText, d.SeqLen, d.Batch), countWords(testText)
	d.ValidDocs, d.TestDocs = docSizes(d.Tok, validText), docSizes(d.Tok, testText)
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

func (d *Data) loadTranslation() error {
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
	case d.Tok != nil:
		if d.SrcTok == nil {
			d.SrcTok = d.Tok
		}
	case d.SeparateVocab:
		if d.SrcTok, err = d.tokenizer(src, ""); err != nil {
			return err
		}
		if d.Tok, err = d.tokenizer(tgt, ""); err != nil {
			return err
		}
	default:
		if d.Tok, err = d.tokenizer(append(src, tgt...), d.TokenizerPath); err != nil {
			return err
		}
		d.SrcTok = d.Tok
	}
	batcher, stats, err := data.NewTranslationBatcher(d.encodePairs(trainPairs), d.MaxTokens, d.MaxLen, d.Seed)
	if err != nil {
		return fmt.Errorf("training data: %w", err)
	}
	d.TrainSource = train.TranslationSource{TranslationBatcher: batcher}
	notes := []string{lengthNote("train", stats, d.MaxLen)}
	var vnote, tnote string
	d.ValidBatches, d.ValidPairs, vnote = d.evalTranslation("valid", validPairs)
	d.TestBatches, d.TestPairs, tnote = d.evalTranslation("test", testPairs)
	d.Dropped = strings.Join(append(notes, vnote, tnote), "; ")
	return nil
}

func lengthNote(split string, s data.LengthStats, maxLen int) string {
	return fmt.Sprintf("%s: %d pairs kept, %d dropped (%d longer than %d tokens, %d with an empty source)",
		split, s.Kept, s.Dropped, s.TooLong, maxLen, s.EmptySrc)
}

func (d *Data) encodePairs(pairs []data.Pair) []data.TokenPair {
	out := make([]data.TokenPair, len(pairs))
	for i, p := range pairs {
		out[i] = data.TokenPair{Src: d.SrcTok.Encode(p.Src), Tgt: d.Tok.Encode(p.Tgt)}
	}
	return out
}

// evalTranslation batches evaluation pairs in order and returns the kept pairs' text in
// batch-row order.
func (d *Data) evalTranslation(split string, pairs []data.Pair) ([]train.Batch, []data.Pair, string) {
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
func (d *Data) tokenizer(texts []string, path string) (*data.Tokenizer, error) {
	if path != "" {
		return data.LoadTokenizer(path)
	}
	tok, err := data.TrainBPE(texts, d.Vocab)
	if err != nil {
		return nil, fmt.Errorf("training the tokenizer: %w", err)
	}
	return tok, nil
}

// SaveFiles writes the tokenizer(s) and the data settings into a checkpoint directory,
// under the file names infer.Load reads.
func (d *Data) SaveFiles(dir string) error {
	if err := checkpoints.WriteJSON(filepath.Join(dir, checkpoints.RunFile), d.Settings); err != nil {
		return err
	}
	if err := d.Tok.Save(filepath.Join(dir, checkpoints.TokenizerFile)); err != nil {
		return err
	}
	if d.SrcTok != nil && d.SrcTok != d.Tok {
		return d.SrcTok.Save(filepath.Join(dir, checkpoints.SrcTokenizerFile))
	}
	return nil
}

// SrcVocab is the source vocabulary size (0 for an LM).
func (d *Data) SrcVocab() int {
	if d.SrcTok == nil {
		return 0
	}
	return d.SrcTok.VocabSize()
}

// maxBatchTokens bounds the tokens of one micro-batch (-batch × -seq for an LM,
// -max-tokens for translation): the logits alone take tokens × vocab floats.
const maxBatchTokens = 1 << 17

// CheckBatchSize refuses micro-batches over maxBatchTokens.
func (d *Data) CheckBatchSize() error {
	if d.Task == models.TaskTranslate && d.MaxTokens > maxBatchTokens {
		return fmt.Errorf("-max-tokens %d: at most %d tokens a batch", d.MaxTokens, maxBatchTokens)
	}
	if d.Task == models.TaskLM && d.Batch > maxBatchTokens/max(d.SeqLen, 1) {
		return fmt.Errorf("-batch %d × -seq %d: at most %d tokens a batch", d.Batch, d.SeqLen, maxBatchTokens)
	}
	return nil
}

// RunOptions are the options of a training run on d into out: d's validation, checkpoint
// and log settings, the progress bar on standard error, and d's files in every checkpoint.
func (d *Data) RunOptions(out, label string) train.RunOptions {
	return train.RunOptions{Out: out, Valid: d.ValidBatches, EvalBatches: d.EvalBatches, EvalEvery: d.EvalEvery,
		CheckpointEvery: d.CkptEvery, KeepLast: d.Keep, Progress: Progress(d.Quiet), Label: label, SaveExtra: d.SaveFiles}
}

// File is one data file of a run: its split, its path and its identity in run.json.
type File struct {
	split string
	path  *string
	id    **data.FileID
}

// Files lists the run's data files given by path (the embedded corpus's are not files).
func (d *Data) Files() []File {
	var out []File
	for _, f := range []File{{"train", &d.Train, &d.TrainFile}, {"valid", &d.Valid, &d.ValidFile}, {"test", &d.Test, &d.TestFile}} {
		if *f.path != "" {
			out = append(out, f)
		}
	}
	return out
}

// IdentifyFiles makes the data file paths absolute and records each file's identity, for
// run.json.
func (d *Data) IdentifyFiles() error {
	for _, f := range d.Files() {
		id, err := data.IdentifyFile(*f.path)
		if err != nil {
			return fmt.Errorf("-%s: %w", f.split, err)
		}
		*f.path, *f.id = id.Path, &id
	}
	return nil
}

// CheckFiles checks that each of the given data files is still the one run.json
// identifies: at the same path, with the same SHA-256. Files without an identity (runs
// saved before identities were recorded) are not checked.
func (d *Data) CheckFiles(files ...File) error {
	for _, f := range files {
		want := *f.id
		if want == nil {
			continue
		}
		got, err := data.IdentifyFile(want.Path)
		switch {
		case err != nil:
			return fmt.Errorf("the %s data this run was trained with, %s, cannot be read (%v); put it back, or for eval score a file of your choice with -data", f.split, want.Path, err)
		case got.SHA256 != want.SHA256:
			return fmt.Errorf("the %s data %s has changed since the run recorded it (now %d bytes, %d lines, sha256 %.12s…; recorded %d bytes, %d lines, sha256 %.12s…)",
				f.split, want.Path, got.Bytes, got.Lines, got.SHA256, want.Bytes, want.Lines, want.SHA256)
		}
	}
	return nil
}

// LoadSplit reads and batches only what eval scores: the file at path when given, else
// split of the run's data (after checking that a data file is still the one the run
// recorded). It returns the batches, the words of an LM text and the data's name.
func (d *Data) LoadSplit(split, path string) ([]train.Batch, int, string, error) {
	if d.Corpus == "" {
		d.Corpus = defaultCorpus(d.Task)
	}
	source := d.Corpus + "/" + split
	if path == "" {
		f := File{"valid", &d.Valid, &d.ValidFile}
		if split == "test" {
			f = File{"test", &d.Test, &d.TestFile}
		}
		if err := d.CheckFiles(f); err != nil {
			return nil, 0, "", fmt.Errorf("eval: %w", err)
		}
		if path = *f.path; path != "" {
			source = path
		}
	} else {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, 0, "", err
		}
		path, source = abs, abs
	}
	if d.Task == models.TaskTranslate {
		pairs, err := data.LoadTSV(path, d.Corpus, split)
		if err != nil {
			return nil, 0, "", err
		}
		batches, _, _ := d.evalTranslation(split, pairs)
		return batches, 0, source, nil
	}
	docs, err := data.LoadText(path, d.Corpus, split)
	if err != nil {
		return nil, 0, "", err
	}
	return lmEvalBatches(d.Tok, docs, d.SeqLen, d.Batch), countWords(docs), source, nil
}

// DocSize is the size of one evaluation document of an LM: its tokens with the EOS that
// JoinDocuments appends, and its words.
type DocSize struct{ Tokens, Words int }

// docSizes measures each document as lmEvalBatches sees it.
func docSizes(tok *data.Tokenizer, docs []string) []DocSize {
	out := make([]DocSize, len(docs))
	for i, d := range docs {
		out[i] = DocSize{Tokens: len(tok.Encode(d)) + 1, Words: countWords([]string{d})}
	}
	return out
}

// UptrainSource is the provenance of an uptrained model, saved in every checkpoint's
// run.json: the checkpoint it was pooled from and how.
type UptrainSource struct {
	Checkpoint string `json:"checkpoint"` // the source checkpoint directory (absolute)
	Step       int    `json:"step"`       // its training step
	Attention  string `json:"attention"`  // its attention: mha or gqa:G
	Pooling    string `json:"pooling"`    // how groups of K/V heads became one (models.PoolingMean)
	Params     int    `json:"params"`     // its parameter count
}

// ErrInterrupted reports a run stopped by a signal after saving its checkpoint (exit status 130).
var ErrInterrupted = errors.New("interrupted")

// UptrainProvenance describes the loaded source checkpoint m and returns its training
// state (nil when it has none, as a converted checkpoint).
func UptrainProvenance(m *infer.Model) (UptrainSource, *train.State, error) {
	abs, err := filepath.Abs(m.Dir)
	if err != nil {
		return UptrainSource{}, nil, err
	}
	source := UptrainSource{Checkpoint: abs, Attention: m.Cfg.AttentionName(), Pooling: models.PoolingMean, Params: m.Cfg.ParamCount()}
	statePath := filepath.Join(m.Dir, checkpoints.StateFile)
	if _, err := os.Stat(statePath); err != nil {
		if c, err := checkpoints.ReadCompletion(m.Dir); err == nil {
			source.Step = c.Step
		}
		return source, nil, nil
	}
	var st train.State
	if err := checkpoints.ReadJSON(statePath, &st, 1<<20); err != nil {
		return source, nil, err
	}
	source.Step = st.Step
	return source, &st, nil
}

// LastLR is the learning rate of a run's last step, the default of its uptraining; 0 without a state.
func LastLR(st *train.State) float64 {
	if st == nil {
		return 0
	}
	return st.Settings.Schedule.LR(max(st.Step, 1))
}

// UptrainWarmup is the default warmup of an uptraining of steps steps: a twentieth, at most 100.
func UptrainWarmup(steps int) int { return max(1, min(100, steps/20)) }

// Progress is where a command reports progress: standard error (a bar on a terminal,
// plain lines otherwise; see train.Progress), or nowhere with -quiet.
func Progress(quiet bool) io.Writer {
	if quiet {
		return nil
	}
	return os.Stderr
}
