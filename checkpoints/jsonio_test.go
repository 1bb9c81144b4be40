package checkpoints

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type testConfig struct {
	Name   string   `json:"name"`
	Layers int      `json:"layers"`
	LR     float64  `json:"lr"`
	Tags   []string `json:"tags,omitempty"`
	Inner  struct {
		Heads int `json:"heads"`
	} `json:"inner"`
}

func TestJSONRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	in := testConfig{Name: "tiny", Layers: 2, LR: 3e-4, Tags: []string{"a", "<b>"}}
	in.Inner.Heads = 4
	if err := WriteJSON(path, in); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "\n  \"layers\": 2,") || !strings.HasSuffix(string(raw), "}\n") {
		t.Errorf("output is not indented JSON:\n%s", raw)
	}
	var out testConfig
	if err := ReadJSON(path, &out, 1<<20); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("got %+v, want %+v", out, in)
	}
	// Overwriting is atomic and leaves no temporary files.
	in.Layers = 3
	if err := WriteJSON(path, in); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestReadJSONRejects(t *testing.T) {
	cases := []struct {
		name    string
		content string
		max     int64
		want    []string
	}{
		{"unknown field", `{"name":"x","extra":1}`, 1 << 10, []string{`unknown field "extra"`}},
		{"unknown nested field", `{"inner":{"heads":1,"tails":2}}`, 1 << 10, []string{`unknown field "tails"`}},
		{"wrong type", `{"name":"x","layers":"two"}`, 1 << 10, []string{"field layers", "string", "int"}},
		{"wrong nested type", "{\n\"inner\":{\"heads\":1.5}}", 1 << 10, []string{"field inner.heads", "line 2"}},
		{"oversized", `{"name":"` + strings.Repeat("x", 100) + `"}`, 50, []string{"limit is 50"}},
		{"trailing garbage", `{"name":"x"} garbage`, 1 << 10, []string{"trailing data"}},
		{"second value", "{\"name\":\"x\"}\n{}", 1 << 10, []string{"trailing data", "line 2, column 1"}},
		{"syntax error", "{\n  \"name\": x}", 1 << 10, []string{"syntax error", "line 2"}},
		{"truncated", `{"name":`, 1 << 10, []string{"unexpected end"}},
		{"empty", ``, 1 << 10, []string{"empty input"}},
		{"not an object", `[1]`, 1 << 10, []string{"cannot use JSON array"}},
		{"bad limit", `{}`, 0, []string{"maxBytes"}},
	}
	dir := t.TempDir()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "case"+string(rune('a'+i))+".json")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			var v testConfig
			err := ReadJSON(path, &v, tc.max)
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestReadJSONAccepts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ok.json")
	// Trailing whitespace is fine; the limit is inclusive.
	content := "{\"name\":\"x\"}\n\t \n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	var v testConfig
	if err := ReadJSON(path, &v, int64(len(content))); err != nil {
		t.Fatal(err)
	}
	if v.Name != "x" {
		t.Errorf("got %+v", v)
	}
	missing := filepath.Join(dir, "missing.json")
	if err := ReadJSON(missing, &v, 100); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: got %v", err)
	}
}

func FuzzReadJSON(f *testing.F) {
	f.Add([]byte(`{"name":"tiny","layers":2,"lr":0.001,"tags":["a"],"inner":{"heads":4}}`))
	f.Add([]byte(`{"name":"x","extra":1}`))
	f.Add([]byte(`{"layers":"two"}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var v testConfig
		if err := DecodeJSON(data, &v, "fuzz.json"); err != nil {
			if !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		// Whatever is accepted must survive an encode/decode cycle
		// unchanged (an empty tags list is omitted when encoding).
		if len(v.Tags) == 0 {
			v.Tags = nil
		}
		enc, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		var again testConfig
		if err := DecodeJSON(enc, &again, "again.json"); err != nil {
			t.Fatalf("re-encoded value rejected: %v", err)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip changed %+v to %+v", v, again)
		}
	})
}
