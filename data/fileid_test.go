package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentifyFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		lines         int
		sha           string // sha256 of content, from coreutils' sha256sum
	}{
		{"empty", "", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"newline-terminated", "a\nb\n", 2, "911169ddaaf146aff539f58c26c489af3b892dff0fe283c1c264c65ae5aa59a2"},
		{"no final newline", "a\nb", 2, "7e18f737311b2dc3b2f269dd78396b0351f14fb66efa879f768cb23181883c78"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			id, err := IdentifyFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if id.Lines != tc.lines || id.Bytes != int64(len(tc.content)) || id.Path != path {
				t.Errorf("got %+v, want %d lines, %d bytes, path %s", id, tc.lines, len(tc.content), path)
			}
			if id.SHA256 != tc.sha {
				t.Errorf("sha256 %s, want %s", id.SHA256, tc.sha)
			}
		})
	}
}
