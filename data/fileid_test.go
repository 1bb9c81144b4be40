package data

import (
	"crypto/sha256"
	"encoding/hex"
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

func TestIdentifyGzipFile(t *testing.T) {
	content := "one\ntwo\nthree" // three lines once decompressed
	raw := gzipped(t, content)
	path := filepath.Join(t.TempDir(), "text.gz")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := IdentifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if id.Lines != 3 || id.Bytes != int64(len(raw)) || id.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("got %+v, want 3 lines, %d bytes, sha256 %x of the stored bytes", id, len(raw), sum)
	}
}
