package models

import (
	"strings"
	"testing"
)

func TestSpecConfig(t *testing.T) {
	mha, err := Spec{Preset: "tiny", Task: TaskLM, Vocab: 500, Activation: "swiglu", Norm: "rms", Positions: "rope"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if mha.KVHeads != mha.Heads || mha.FFDim != 256 || mha.Activation != "swiglu" || mha.Norm != "rms" || mha.Positions != "rope" || !mha.TieEmbeddings {
		t.Fatalf("mha spec gave %+v", mha)
	}
	mqa, err := Spec{Preset: "tiny", Task: TaskLM, Vocab: 500, Attention: "mqa", Activation: "swiglu", Norm: "rms", Positions: "rope"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	// SwiGLU's feed-forward unit costs 3·d: (64 − 16)·64·2 saved weights / (3·64) = 32 more.
	if mqa.KVHeads != 1 || mqa.FFDim != 256+32 || mqa.FFDim != mha.MatchedFFDim(1) {
		t.Errorf("mqa spec: kv %d, d_ff %d; want 1 and %d", mqa.KVHeads, mqa.FFDim, 256+32)
	}
	if d := mqa.ParamCount() - mha.ParamCount(); d < -200 || d > 200 {
		t.Errorf("matched MQA has %d parameters, MHA %d", mqa.ParamCount(), mha.ParamCount())
	}
	un, err := Spec{Preset: "tiny", Task: TaskTranslate, Vocab: 500, SrcVocab: 400, Attention: "gqa:2", Unmatched: true, Untied: true}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if un.KVHeads != 2 || un.FFDim != 256 || un.SrcVocab != 400 || un.TieEmbeddings || un.EncoderLayers != 2 {
		t.Errorf("unmatched gqa translation spec gave %+v", un)
	}
	win, err := Spec{Preset: "tiny", Task: TaskLM, Vocab: 500, Window: 16}.Config()
	if err != nil || win.Window != 16 {
		t.Errorf("window spec gave window %d, %v; want 16", win.Window, err)
	}
	for _, s := range []Spec{
		{Preset: "tiny", Task: TaskLM, Vocab: 500, Attention: "gqa:3"},
		{Preset: "tiny", Task: TaskLM, Vocab: 500, Window: -1},
		{Preset: "huge", Task: TaskLM, Vocab: 500},
		{Preset: "tiny", Task: TaskLM, Vocab: 500, Norm: "batch"},
	} {
		if _, err := s.Config(); err == nil || !strings.Contains(err.Error(), "allowed") && !strings.Contains(err.Error(), "divide") && !strings.Contains(err.Error(), "negative") {
			t.Errorf("spec %+v: error %v", s, err)
		}
	}
}
