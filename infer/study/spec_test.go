package study

import (
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
