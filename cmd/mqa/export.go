package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"mqa/checkpoints"
	"mqa/checkpoints/hf"
	"mqa/data"
	"mqa/infer"
)

func init() {
	commands["export"] = command{"write a language model as a Hugging Face transformers model directory", runExport}
}

func runExport(args []string) error {
	fs := newFlags("export", "-ckpt DIR -format hf -out DIR")
	ckpt := fs.String("ckpt", "", "checkpoint directory (or a run directory: its newest complete checkpoint)")
	format := fs.String("format", "hf", "output format: hf (config.json, model.safetensors and tokenizer.json for transformers)")
	out := fs.String("out", "", "directory to write (created if needed)")
	reference := fs.String("reference", "", "a file of prompts, one a line: also write reference.json with mqa's logits and greedy continuation of each (to check the export in another runtime)")
	maxNew := fs.Int("max", 20, "with -reference: most new tokens of each greedy continuation")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *ckpt == "" || *out == "":
		return fmt.Errorf("export: -ckpt and -out are required: %w", errUsage)
	case *format != "hf":
		return fmt.Errorf("export: -format %q (allowed: hf): %w", *format, errUsage)
	case *maxNew < 1:
		return fmt.Errorf("export: -max %d must be at least 1: %w", *maxNew, errUsage)
	}
	m, err := infer.Load(*ckpt)
	if err != nil {
		return err
	}
	arch, err := hf.Export(*out, m.Cfg, m.Params, m.Tok)
	if err != nil {
		return fmt.Errorf("export %s: %w", m.Dir, err)
	}
	fmt.Fprintf(os.Stderr, "mqa export: %s (%s attention, %d K/V heads) → %s, Hugging Face %s\n", m.Dir, m.Cfg.AttentionName(), m.Cfg.KVHeads, *out, arch)
	if *reference == "" {
		return nil
	}
	return writeReference(m, *reference, filepath.Join(*out, referenceFile), *maxNew)
}

// referenceFile holds mqa's own results on the -reference prompts.
const referenceFile = "reference.json"

// referencePrompt is mqa's result on one prompt: its token ids, the logits after each of
// them ([len(IDs)][vocab]), and the greedy continuation (mqa generate's tokens, without EOS).
type referencePrompt struct {
	Text   string      `json:"text"`
	IDs    []int       `json:"ids"`
	Logits [][]float32 `json:"logits"`
	Greedy []int       `json:"greedy"`
}

// writeReference runs the model on each non-empty line of promptsPath with mqa's cached
// CPU decoder, the one mqa generate uses, and writes the results as JSON to path.
func writeReference(m *infer.Model, promptsPath, path string, maxNew int) error {
	raw, err := os.ReadFile(promptsPath)
	if err != nil {
		return fmt.Errorf("export: -reference: %w", err)
	}
	cpu, err := infer.NewCPU(m.Cfg, m.Params, false)
	if err != nil {
		return err
	}
	var refs []referencePrompt
	for i, line := range strings.Split(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n") {
		if line == "" {
			continue
		}
		r := referencePrompt{Text: line, IDs: m.Tok.Encode(line)}
		capacity := min(m.Cfg.MaxLen, len(r.IDs)+maxNew)
		if len(r.IDs) >= capacity {
			return fmt.Errorf("export: %s:%d: the prompt has %d tokens, the model takes %d", promptsPath, i+1, len(r.IDs), m.Cfg.MaxLen)
		}
		s, err := cpu.LM(1, capacity)
		if err != nil {
			return err
		}
		for _, id := range r.IDs {
			logits, err := s.Step([]int{id})
			if err != nil {
				return err
			}
			r.Logits = append(r.Logits, logits)
		}
		if s, err = cpu.LM(1, capacity); err != nil {
			return err
		}
		out, err := infer.Generate(s, [][]int{r.IDs}, maxNew, data.EOSID, infer.Sampling{})
		if err != nil {
			return err
		}
		r.Greedy = append([]int{}, out[0]...)
		refs = append(refs, r)
	}
	b, err := json.Marshal(map[string]any{"model": m.Dir, "prompts": refs})
	if err != nil {
		return fmt.Errorf("export: reference: %w", err)
	}
	return checkpoints.WriteFileAtomic(path, 0o644, func(w io.Writer) error { _, err := w.Write(b); return err })
}
