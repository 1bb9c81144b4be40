package cuda

import (
	"strings"
	"testing"

	"mqa/infer"
)

func TestBackendDecodeOptions(t *testing.T) {
	t.Setenv(MemoryEnv, "")
	for _, c := range []struct {
		in        infer.BackendOptions
		wantCache string
		wantErr   string
	}{
		{infer.BackendOptions{}, "fp32", ""},
		{infer.BackendOptions{Cache: "bf16"}, "bf16", ""},
		{infer.BackendOptions{Cache: "fp16"}, "", `cache type "fp16"`},
		{infer.BackendOptions{NoCache: true}, "", "CPU only"},
	} {
		got, err := BackendDecodeOptions(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%+v: error %v, want one containing %q", c.in, err, c.wantErr)
			}
			continue
		}
		want := DefaultDecodeOptions()
		want.Cache = c.wantCache
		if err != nil || got != want {
			t.Errorf("%+v: got %+v, %v; want %+v", c.in, got, err, want)
		}
	}
}
