package study

import (
	"strings"
	"testing"

	"mqa/models"
)

func TestFillDefaults(t *testing.T) {
	def := models.Training{CompareSteps: 1000, BLEULines: 300, DecodeBatch: 32, CompareDropout: 0.1}
	for _, c := range []struct {
		name     string
		in, want Spec
	}{
		{"all left to the preset", Spec{BLEULines: -1, Dropout: -1}, Spec{Steps: 1000, BLEULines: 300, DecodeBatch: 32, Dropout: 0.1}},
		{"all given", Spec{Steps: 5, BLEULines: 0, DecodeBatch: 4, Dropout: 0}, Spec{Steps: 5, BLEULines: 0, DecodeBatch: 4, Dropout: 0}},
	} {
		got := c.in
		got.FillDefaults(def)
		if got.Steps != c.want.Steps || got.BLEULines != c.want.BLEULines || got.DecodeBatch != c.want.DecodeBatch || got.Dropout != c.want.Dropout {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	ok := Spec{Preset: "tiny", MTCorpus: "bible.en-es", Attns: []string{"mha", "gqa:2", "mqa"}, Tasks: []string{"lm", "translate"}}
	for _, c := range []struct {
		name    string
		change  func(*Spec)
		wantErr string
	}{
		{"the defaults", func(*Spec) {}, ""},
		{"all three files, one task", func(s *Spec) { s.Train, s.Valid, s.Test, s.Tasks = "a", "b", "c", []string{"lm"} }, ""},
		{"two files", func(s *Spec) { s.Train, s.Valid = "a", "b" }, "your data needs all of -train, -valid and -test"},
		{"files for two tasks", func(s *Spec) { s.Train, s.Valid, s.Test = "a", "b", "c" }, `not "lm,translate"`},
		{"another corpus", func(s *Spec) { s.MTCorpus = "wmt" }, `-mt-corpus "wmt"`},
		{"gqa:3 of 4 heads", func(s *Spec) { s.Attns = []string{"mha", "gqa:3"} }, "gqa:3"},
		{"uptrain", func(s *Spec) { s.Uptrain = 0.05 }, ""},
		{"uptrain too long", func(s *Spec) { s.Uptrain = 1.5 }, "-uptrain 1.5 must be a fraction"},
		{"uptrain without mha", func(s *Spec) { s.Uptrain, s.Attns = 0.1, []string{"mqa"} }, "-attn needs mha and at least one more"},
		{"uptrain of mha only", func(s *Spec) { s.Uptrain, s.Attns = 0.1, []string{"mha"} }, "-attn needs mha and at least one more"},
	} {
		s := ok
		c.change(&s)
		err := s.Check()
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.wantErr)
		}
	}
}
