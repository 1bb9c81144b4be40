package main

import (
	"encoding/json"
	"fmt"
	"os"

	"mqa/infer/study"
)

func init() {
	commands["version"] = command{"the module version and the VCS commit this binary was built from", runVersion}
}

func runVersion(args []string) error {
	fs := newFlags("version", "[-json]")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(study.ReadBuildInfo())
	}
	fmt.Println(study.ReadBuildInfo())
	return nil
}
