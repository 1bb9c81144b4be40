package train_test

import (
	"fmt"
	"os"
	"path/filepath"

	"mqa/data"
	"mqa/infer"
	"mqa/models"
	"mqa/train"
)

// Example_languageModel trains a tiny multi-query language model on a few sentences, saves
// it, loads it back and continues a prompt with it.
func Example_languageModel() {
	docs := []string{
		"the cat sat on the mat and the dog sat on the log",
		"a cat and a dog sat by the door of the house",
		"the dog saw the cat on the mat by the door",
	}
	tok, err := data.TrainBPE(docs, 300)
	if err != nil {
		panic(err)
	}
	cfg, err := models.Spec{Preset: "tiny", Task: models.TaskLM, Vocab: tok.VocabSize(), Attention: "mqa",
		Norm: "rms", Positions: "rope", Activation: "swiglu"}.Config()
	if err != nil {
		panic(err)
	}
	settings := train.DefaultSettings(20)
	settings.Schedule.Peak = 3e-3
	trainer, err := train.NewTrainer(cfg, nil, settings, "cpu")
	if err != nil {
		panic(err)
	}
	defer trainer.Close()
	src, err := train.NewLMSource(tok, docs, 2, 12, 1)
	if err != nil {
		panic(err)
	}
	var first, last float64
	for trainer.Step < settings.Steps {
		st, err := trainer.TrainStep([]train.Batch{src.Next()})
		if err != nil {
			panic(err)
		}
		if st.Step == 1 {
			first = st.Loss
		}
		last = st.Loss
	}
	weights, err := trainer.Weights()
	if err != nil {
		panic(err)
	}

	dir, err := os.MkdirTemp("", "mqa-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	model := &infer.Model{Cfg: cfg, Params: weights, Tok: tok}
	if err := model.Save(filepath.Join(dir, "model")); err != nil {
		panic(err)
	}
	loaded, err := infer.Load(filepath.Join(dir, "model"))
	if err != nil {
		panic(err)
	}
	generate := func(m *infer.Model) string {
		cpu, err := infer.NewCPU(m.Cfg, m.Params, false)
		if err != nil {
			panic(err)
		}
		text, err := infer.GenerateText(cpu, m.Tok, "the cat", 8, infer.Sampling{})
		if err != nil {
			panic(err)
		}
		return text
	}
	fmt.Printf("%s attention, %d K/V head, d_ff %d\n", cfg.AttentionName(), cfg.KVHeads, cfg.FFDim)
	fmt.Println("loss fell:", last < first-1)
	fmt.Println("the loaded model continues the prompt as the trained one:", generate(loaded) == generate(model))
	// Output:
	// mqa attention, 1 K/V head, d_ff 288
	// loss fell: true
	// the loaded model continues the prompt as the trained one: true
}
