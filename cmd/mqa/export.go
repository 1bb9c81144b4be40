package main

import (
	"fmt"
	"os"

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
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *ckpt == "" || *out == "":
		return fmt.Errorf("export: -ckpt and -out are required: %w", errUsage)
	case *format != "hf":
		return fmt.Errorf("export: -format %q (allowed: hf): %w", *format, errUsage)
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
	return nil
}
