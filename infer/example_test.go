package infer_test

import (
	"fmt"

	"mqa/data"
	"mqa/infer"
	"mqa/models"
	"mqa/train"
)

// ExampleGenerateText continues a prompt with a (here untrained) grouped-query language
// model, once with the K/V cache and once recomputing the whole sequence at each step.
func ExampleGenerateText() {
	tok, err := data.TrainBPE([]string{"one two three four five six seven eight nine ten"}, 280)
	if err != nil {
		panic(err)
	}
	cfg, err := models.Spec{Preset: "tiny", Task: models.TaskLM, Vocab: tok.VocabSize(), Attention: "gqa:2"}.Config()
	if err != nil {
		panic(err)
	}
	params, err := models.InitParams(cfg, 1)
	if err != nil {
		panic(err)
	}
	var texts []string
	for _, noCache := range []bool{false, true} {
		cpu, err := infer.NewCPU(cfg, params, noCache)
		if err != nil {
			panic(err)
		}
		text, err := infer.GenerateText(cpu, tok, "one two", 10, infer.Sampling{})
		if err != nil {
			panic(err)
		}
		texts = append(texts, text)
	}
	fmt.Printf("%s: %d K/V heads for %d query heads\n", cfg.AttentionName(), cfg.KVHeads, cfg.Heads)
	fmt.Println("cached and recomputed decoding agree:", texts[0] == texts[1])
	// Output:
	// gqa:2: 2 K/V heads for 4 query heads
	// cached and recomputed decoding agree: true
}

// ExampleTranslateLines trains a tiny multi-query translation model for a few steps and
// translates with beam search.
func ExampleTranslateLines() {
	pairs := []data.Pair{
		{Src: "the house is red", Tgt: "la casa es roja"},
		{Src: "the dog is big", Tgt: "el perro es grande"},
		{Src: "the house is big", Tgt: "la casa es grande"},
		{Src: "the dog is red", Tgt: "el perro es rojo"},
	}
	var texts []string
	for _, p := range pairs {
		texts = append(texts, p.Src, p.Tgt)
	}
	tok, err := data.TrainBPE(texts, 300)
	if err != nil {
		panic(err)
	}
	cfg, err := models.Spec{Preset: "tiny", Task: models.TaskTranslate, Vocab: tok.VocabSize(), Attention: "mqa"}.Config()
	if err != nil {
		panic(err)
	}
	trainer, err := train.NewTrainer(cfg, nil, train.DefaultSettings(10), "cpu")
	if err != nil {
		panic(err)
	}
	defer trainer.Close()
	src, _, err := train.NewTranslationSource(tok, tok, pairs, 64, 32, 1)
	if err != nil {
		panic(err)
	}
	for trainer.Step < 10 {
		if _, err := trainer.TrainStep([]train.Batch{src.Next()}); err != nil {
			panic(err)
		}
	}
	weights, err := trainer.Weights()
	if err != nil {
		panic(err)
	}
	cpu, err := infer.NewCPU(cfg, weights, false)
	if err != nil {
		panic(err)
	}
	out, err := infer.TranslateLines(cpu, tok, tok, []string{"the house is red", "", "the dog"},
		infer.TranslateOptions{Beam: 2, Alpha: 0.6, Batch: 8, MaxLen: 6})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d translations; the empty line stays empty: %v\n", len(out), out[1] == "")
	// Output:
	// 3 translations; the empty line stays empty: true
}
