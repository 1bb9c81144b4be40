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

// writeReference runs the model on each non-empty line of promptsPath (infer.References)
// and writes the results as JSON to path.
func writeReference(m *infer.Model, promptsPath, path string, maxNew int) error {
	raw, err := os.ReadFile(promptsPath)
	if err != nil {
		return fmt.Errorf("export: -reference: %w", err)
	}
	refs, err := infer.References(m, promptsPath, strings.Split(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n"), maxNew)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	b, err := json.Marshal(map[string]any{"model": m.Dir, "prompts": refs})
	if err != nil {
		return fmt.Errorf("export: reference: %w", err)
	}
	return checkpoints.WriteFileAtomic(path, 0o644, func(w io.Writer) error { _, err := w.Write(b); return err })
}
