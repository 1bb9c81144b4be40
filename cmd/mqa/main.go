// Command mqa trains and compares transformer language and translation models with
// multi-head, grouped-query and multi-query attention, and decodes with a cached K/V.
//
// Run "mqa help" for the commands.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"mqa/infer/bleu"
	"mqa/train/rundata"
	"mqa/train/runner"
)

// command is one subcommand of the CLI.
type command struct {
	summary string
	run     func(args []string) error
}

// commands holds every subcommand; files of this package register theirs in init.
var commands = map[string]command{}

// benchmarks holds the "mqa bench" subcommands.
var benchmarks = map[string]command{}

// errUsage marks an error in the command line (exit status 2).
var errUsage = errors.New("run 'mqa help' for usage")

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return report(c.run([]string{"-h"}))
			}
		}
		usage(os.Stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "mqa: unknown command %q\n\n", args[0])
		usage(os.Stderr)
		return 2
	}
	return report(c.run(args[1:]))
}

// report prints an error and returns the exit status.
func report(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, rundata.ErrInterrupted):
		if err != rundata.ErrInterrupted { // mqa compare's says how to go on; train's said it already
			fmt.Fprintln(os.Stderr, "mqa:", err)
		}
		return runner.InterruptedStatus
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "mqa:", err)
		return 2
	}
	fmt.Fprintln(os.Stderr, "mqa:", err)
	return 1
}

// usage lists the commands on w: standard output when asked for, standard error after a
// mistake.
func usage(w io.Writer) {
	fmt.Fprintln(w, "mqa trains and compares multi-head, grouped-query and multi-query attention transformers.")
	fmt.Fprintln(w, "\nUsage: mqa COMMAND [flags]   (mqa COMMAND -h for its flags)\n\nCommands:")
	for _, n := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}

func init() {
	commands["bench"] = command{"speed benchmarks (mqa bench -h lists them)", runBench}
}

func runBench(args []string) error {
	names := slices.Sorted(maps.Keys(benchmarks))
	if len(args) == 0 || args[0] == "-h" {
		w := os.Stdout
		if len(args) == 0 {
			w = os.Stderr
		}
		fmt.Fprintln(w, "Usage: mqa bench KIND [flags]; kinds:")
		for _, n := range names {
			fmt.Fprintf(w, "  %-8s %s\n", n, benchmarks[n].summary)
		}
		if len(args) == 0 {
			return fmt.Errorf("bench: name a benchmark (%s): %w", strings.Join(names, ", "), errUsage)
		}
		return nil
	}
	b, ok := benchmarks[args[0]]
	if !ok {
		return fmt.Errorf("bench: unknown benchmark %q (allowed: %s): %w", args[0], strings.Join(names, ", "), errUsage)
	}
	return b.run(args[1:])
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mqa %s %s\n\nFlags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, turning errors into usage errors and refusing stray arguments.
// Asked for with -h, the usage goes to standard output; after a mistake, to standard error.
func parse(fs *flag.FlagSet, args []string) error {
	var msg bytes.Buffer
	fs.SetOutput(&msg)
	err := fs.Parse(args)
	fs.SetOutput(nil)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = os.Stdout.Write(msg.Bytes())
			return err
		}
		_, _ = os.Stderr.Write(msg.Bytes())
		return fmt.Errorf("%s: %v: %w", fs.Name(), err, errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q: %w", fs.Name(), fs.Arg(0), errUsage)
	}
	return nil
}

// readLinesArg reads the lines of a file argument, or of standard input when it is "-"
// (see bleu.ReadLines: empty lines are kept).
func readLinesArg(path string) ([]string, error) {
	if path == "-" {
		return bleu.ReadLinesFrom(os.Stdin, "standard input")
	}
	return bleu.ReadLines(path)
}
