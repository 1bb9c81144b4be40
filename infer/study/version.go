package study

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
)

// BuildInfo says which code a binary is: its module version and, when built inside a git
// checkout, the commit, its time and whether the tree had uncommitted changes. results.json
// records it, and so can any other record of a run.
type BuildInfo struct {
	Module   string `json:"module"`
	Version  string `json:"version"` // "(devel)" for a build from a checkout
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"commit_time,omitempty"`
	Modified bool   `json:"modified,omitempty"` // built with uncommitted changes
	// CommitFrom says where Commit was read: "build" (stamped by go build), or "git" (go run
	// stamps nothing, so the commit of the checkout of this module in the working directory).
	CommitFrom string `json:"commit_from,omitempty"`
	Go         string `json:"go"`
}

// ReadBuildInfo reads the build information of the running binary.
func ReadBuildInfo() BuildInfo {
	v := BuildInfo{Module: "mqa", Version: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.Version = bi.Main.Path, bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit, v.CommitFrom = s.Value, "build"
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if v.Commit == "" {
		v.Commit, v.Modified = checkoutCommit(v.Module)
		if v.Commit != "" {
			v.CommitFrom = "git"
		}
	}
	return v
}

// checkoutCommit is the commit of the git checkout around the working directory, and whether
// it has uncommitted changes to tracked files, if that checkout holds module; "" otherwise
// (no git, not a checkout, another module).
func checkoutCommit(module string) (commit string, modified bool) {
	git := func(args ...string) string {
		out, err := exec.Command("git", args...).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	top := git("rev-parse", "--show-toplevel")
	if top == "" {
		return "", false
	}
	mod, err := os.ReadFile(filepath.Join(top, "go.mod"))
	if err != nil || !strings.HasPrefix(string(mod), "module "+module+"\n") {
		return "", false
	}
	return git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no") != ""
}

// String is the one line "mqa version" prints.
func (v BuildInfo) String() string {
	s := fmt.Sprintf("%s %s", v.Module, v.Version)
	if v.Commit != "" {
		s += " commit " + v.Commit
		if v.CommitFrom == "git" {
			s += " (of the checkout in the working directory)"
		}
		if v.Time != "" {
			s += ", " + v.Time
		}
		if v.Modified {
			s += " with uncommitted changes"
		}
	}
	return s + ", " + v.Go
}
