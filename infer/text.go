package infer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/layers"
	"mqa/models"
)

// Model is a loaded checkpoint: configuration, weights and tokenizers.
type Model struct {
	Dir         string // the checkpoint directory used
	Cfg         models.Config
	Params      *layers.Params
	Tok, SrcTok *data.Tokenizer // SrcTok is Tok unless the checkpoint has its own source tokenizer
}

// Load reads a checkpoint directory, or the newest complete checkpoint of a run directory.
func Load(path string) (*Model, error) {
	return LoadWith(path, models.LoadOptions{})
}

// LoadWith is Load with options for loading the weights.
func LoadWith(path string, opt models.LoadOptions) (*Model, error) {
	dir, err := models.ModelDir(path)
	if err != nil {
		return nil, err
	}
	cfg, params, err := models.LoadModelWith(dir, opt)
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Cfg: cfg, Params: params}
	if m.Tok, m.SrcTok, err = LoadTokenizers(dir); err != nil {
		return nil, err
	}
	if m.Tok.VocabSize() > cfg.Vocab || (cfg.Task == models.TaskTranslate && m.SrcTok.VocabSize() > max(cfg.Vocab, cfg.SrcVocab)) {
		return nil, fmt.Errorf("%s: the tokenizer has more tokens than the model's vocabulary", dir)
	}
	return m, nil
}

// LoadTokenizers reads a model directory's target and source tokenizers (the same when the
// source has none of its own).
func LoadTokenizers(dir string) (tgt, src *data.Tokenizer, err error) {
	if tgt, err = data.LoadTokenizer(filepath.Join(dir, checkpoints.TokenizerFile)); err != nil {
		return nil, nil, err
	}
	src = tgt
	if _, err := os.Stat(filepath.Join(dir, checkpoints.SrcTokenizerFile)); err == nil {
		if src, err = data.LoadTokenizer(filepath.Join(dir, checkpoints.SrcTokenizerFile)); err != nil {
			return nil, nil, err
		}
	}
	return tgt, src, nil
}

// GenerateText continues prompt with a language model: the prompt is tokenised (an empty
// prompt starts at a document boundary, EOS, since training joins documents with EOS) and
// at most maxNew tokens are added, stopping early at EOS or at the model's max_len. It
// returns the continuation (without the prompt). A prompt of max_len tokens or more is an
// error.
func GenerateText(b Backend, tok *data.Tokenizer, prompt string, maxNew int, opt Sampling) (string, error) {
	cfg := b.Config()
	if cfg.Task != models.TaskLM {
		return "", fmt.Errorf("generate needs a language model; this checkpoint is a %q model (use translate)", cfg.Task)
	}
	ids := tok.Encode(prompt)
	if len(ids) == 0 {
		ids = []int{data.EOSID}
	}
	if len(ids) >= cfg.MaxLen {
		return "", fmt.Errorf("the prompt has %d tokens; the model's max_len is %d, so it must be shorter than that to leave room for new tokens", len(ids), cfg.MaxLen)
	}
	if maxNew < 1 {
		return "", fmt.Errorf("max new tokens %d must be at least 1", maxNew)
	}
	s, err := b.LM(1, min(cfg.MaxLen, len(ids)+maxNew))
	if err != nil {
		return "", err
	}
	out, err := Generate(s, [][]int{ids}, maxNew, data.EOSID, opt)
	if err != nil {
		return "", err
	}
	return tok.Decode(out[0]), nil
}

// GenerateSamples continues each prompt n times with GenerateText, sample k with seed
// opt.Seed+k, and gives emit the samples in order (those of the first prompt first), each
// on one line: its "\r\n" and "\n" line breaks made spaces.
func GenerateSamples(b Backend, tok *data.Tokenizer, prompts []string, n, maxNew int, opt Sampling, emit func(string)) error {
	for _, p := range prompts {
		for k := range n {
			o := opt
			o.Seed += uint64(k)
			text, err := GenerateText(b, tok, p, maxNew, o)
			if err != nil {
				return err
			}
			emit(OneLine(text))
		}
	}
	return nil
}

// TranslateOptions configure TranslateLines.
type TranslateOptions struct {
	Beam  int     // beam size; 1 is greedy search
	Alpha float64 // length penalty exponent (beam > 1)
	Batch int     // sentences decoded together
	// MaxLen bounds the output tokens of a sentence; 0 means 2·(source tokens) + 10, at
	// most the model's max_len.
	MaxLen int
	// Progress, if set, is called with the number of lines done after each batch.
	Progress func(done int)
	// Warn, if set, receives notes about single lines (a source truncated to max_len).
	Warn func(string)
}

// lineBreaks replaces line breaks by spaces.
var lineBreaks = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")

// OneLine replaces the line breaks that decoded text might hold by spaces, so that it can be
// written as one line of a line-aligned file.
func OneLine(s string) string { return lineBreaks.Replace(s) }

// TranslateLines translates each line: one output per input, in order. An empty line (no
// tokens) gives an empty output without running the model; a source longer than the
// model's max_len is truncated to it (with a warning). Line breaks the model might
// produce are replaced by spaces, so each output is one line. Sentences are decoded in
// batches of similar length.
func TranslateLines(b Backend, src, tgt *data.Tokenizer, lines []string, opt TranslateOptions) ([]string, error) {
	cfg := b.Config()
	if cfg.Task != models.TaskTranslate {
		return nil, fmt.Errorf("translate needs a translation model; this checkpoint is a %q model (use generate)", cfg.Task)
	}
	if opt.Beam < 1 || opt.Batch < 1 || opt.MaxLen < 0 {
		return nil, fmt.Errorf("translate: beam %d and batch %d must be at least 1, max length %d not negative", opt.Beam, opt.Batch, opt.MaxLen)
	}
	out := make([]string, len(lines))
	ids := make([][]int, len(lines))
	var order []int // non-empty lines, shortest first
	done := 0
	for i, l := range lines {
		ids[i] = src.Encode(l)
		if len(ids[i]) > cfg.MaxLen {
			if opt.Warn != nil {
				opt.Warn(fmt.Sprintf("line %d: %d source tokens truncated to max_len %d", i+1, len(ids[i]), cfg.MaxLen))
			}
			ids[i] = ids[i][:cfg.MaxLen]
		}
		if len(ids[i]) > 0 {
			order = append(order, i)
		} else {
			done++
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(ids[a]) - len(ids[b]) })
	for start := 0; start < len(order); start += opt.Batch {
		chunk := order[start:min(start+opt.Batch, len(order))]
		srcs := make([][]int, len(chunk))
		longest := 0
		for j, i := range chunk {
			srcs[j] = ids[i]
			longest = max(longest, len(ids[i]))
		}
		maxOut := opt.MaxLen
		if maxOut == 0 {
			maxOut = 2*longest + 10
		}
		maxOut = min(maxOut, cfg.MaxLen)
		s, err := b.Translation(srcs, opt.Beam, maxOut)
		if err != nil {
			return nil, err
		}
		var toks [][]int
		if opt.Beam == 1 {
			starts := make([][]int, len(chunk))
			for j := range starts {
				starts[j] = []int{data.BOSID}
			}
			if toks, err = Generate(s, starts, maxOut, data.EOSID, Sampling{}); err != nil {
				return nil, err
			}
		} else {
			hyps, err := BeamSearch(s, len(chunk), Beam{Size: opt.Beam, Alpha: opt.Alpha, MaxLen: maxOut, BOS: data.BOSID, EOS: data.EOSID})
			if err != nil {
				return nil, err
			}
			for _, h := range hyps {
				toks = append(toks, h.Tokens)
			}
		}
		for j, i := range chunk {
			out[i] = OneLine(tgt.Decode(toks[j]))
		}
		done += len(chunk)
		if opt.Progress != nil {
			opt.Progress(done)
		}
	}
	return out, nil
}
